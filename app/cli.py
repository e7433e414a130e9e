"""`keyscope` command line: serve, migrate, token, rotate, keygen (and legacy scan, demo)."""

import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from keyscope.app.errors import ConfigurationError

if TYPE_CHECKING:
    from keyscope.app.keys.store import KeyStore
    from keyscope.containers import Container

cli = typer.Typer(help="keyscope: per-user AI-provider keys for FastAPI.", no_args_is_help=True)
console = Console(stderr=True)


def _container() -> "Container":
    # Imported lazily: `keyscope --help` must not build the app.
    from keyscope.containers import Container

    return Container()


def _fail(message: str) -> typer.Exit:
    # Plain text, not rich: one unwrapped line, and brackets in messages are not markup.
    print(f"keyscope: error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


def _validated(container: "Container") -> "Container":
    """Everything the server would refuse at start-up, checked before anything is changed."""
    from keyscope.app.db import require_driver

    settings = container.settings()  # invalid values, production secrets
    container.keyring()  # a malformed keyring
    container.token_verifier()
    settings.fallback_providers()
    require_driver(settings.database_url)  # e.g. PostgreSQL without the [postgres] extra
    return container


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (each has its own record cache).")
    ] = 1,
    migrate: Annotated[bool, typer.Option(help="Run migrations before serving.")] = True,
    access_log: Annotated[
        bool, typer.Option(help="Log one line per request (costs CPU per request).")
    ] = False,
    proxy_headers: Annotated[
        bool,
        typer.Option(help="Trust X-Forwarded-For/-Proto sent by --forwarded-allow-ips."),
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies trusted for proxy headers (comma list; uvicorn: 127.0.0.1)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Migrate the database (unless --no-migrate), then serve with uvicorn.

    uvloop and httptools (installed with keyscope) are used where available; the access log
    is off unless --access-log (see docs/performance.md for what it costs)."""
    import uvicorn

    settings = _validated(_container()).settings()
    if workers > 1 and settings.key_cache_ttl > 0 and settings.cache_coherence == "single-process":
        # Workers hear each other's writes unless told they are alone: say what that means.
        console.print(
            f"[bold yellow]warning:[/] {workers} workers each cache encrypted key records for "
            f"up to {settings.key_cache_ttl:g} s and KEYSCOPE_CACHE_COHERENCE=single-process "
            "ignores the other workers' writes: after a key is replaced or deleted, another "
            "worker may serve the old key until then (unset it, or KEYSCOPE_KEY_CACHE_TTL=0 "
            "reads through)"
        )
    if migrate:
        _migrate(settings.database_url)
    uvicorn.run(
        "keyscope.app.asgi:app",
        host=host,
        port=port,
        workers=workers,
        # "auto" picks uvloop and httptools (keyscope's dependencies) when they import.
        loop="auto",
        http="auto",
        access_log=access_log,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level,
    )


@cli.command("migrate")
def migrate_command() -> None:
    """Apply keyscope's migrations (`alembic upgrade head`) to KEYSCOPE_DATABASE_URL.

    Needs only the database URL (no keyring or JWT settings), so a deployment's migration job
    can run it alone. keyscope's revision is kept in `keyscope_alembic_version`, apart from the
    host application's own Alembic history.
    """
    from keyscope.app.settings import read_settings

    _migrate(read_settings().database_url)


def _migrate(url: str) -> None:
    from keyscope.app.migrate import upgrade

    upgrade(url)
    console.print("database migrated to head")


@cli.command()
def token(
    sub: str,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 3600,
) -> None:
    """Mint a development HS256 token for SUB (needs KEYSCOPE_JWT_SECRET or local mode)."""
    from keyscope.app.security.tokens import mint_token

    settings = _container().settings()
    if settings.jwt_secret is None:
        raise _fail("`keyscope token` needs KEYSCOPE_JWT_SECRET (HS256)")
    if not sub.strip():
        raise _fail("SUB must not be empty")
    if ttl > settings.jwt_max_ttl:
        raise _fail(f"--ttl is above KEYSCOPE_JWT_MAX_TTL ({settings.jwt_max_ttl} s)")
    secret = settings.jwt_secret.get_secret_value()
    if not settings.is_production and "KEYSCOPE_JWT_SECRET" not in os.environ:
        where = settings.var_dir / "dev-jwt-secret"
        console.print(f"signed with the local-mode secret in {where}", soft_wrap=True, markup=False)
    typer.echo(
        mint_token(
            secret,
            sub,
            ttl_seconds=ttl,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
    )


@cli.command()
def keygen(
    kid: Annotated[str, typer.Argument(help="Id of the new master key.")] = "k1",
    jwt_secret: Annotated[
        bool, typer.Option("--jwt-secret", help="Print a KEYSCOPE_JWT_SECRET value instead.")
    ] = False,
) -> None:
    """Print a new master key entry (KID:base64 of 32 random bytes) for KEYSCOPE_MASTER_KEYS.

    Put it first to make it the primary key, keep the old entries after it until `keyscope
    rotate` has re-wrapped every stored key. With --jwt-secret, print an HS256 secret instead.
    """
    import secrets

    from keyscope.app.security.keyring import is_valid_key_id, new_master_key_entry

    if jwt_secret:
        typer.echo(secrets.token_urlsafe(48))
        return
    if not is_valid_key_id(kid):
        raise _fail("KID must be 1-64 characters of letters, digits, '.', '_' or '-'")
    typer.echo(new_master_key_entry(kid))


@cli.command()
def rotate(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
) -> None:
    """Re-wrap every stored data key under the primary master key (resumable, idempotent)."""
    container = _container()
    store, keyring = container.key_store(), container.keyring()
    before = store.key_ids_in_use()
    pending = sum(n for kid, n in before.items() if kid != keyring.primary_id and kid in keyring)
    missing = {kid: n for kid, n in before.items() if kid not in keyring}
    if not dry_run and pending:
        totals = _rewrap_all(store, pending, batch_size)
        console.print(
            f"re-wrapped {totals[0]} key(s); {totals[1]} replaced meanwhile; "
            f"{totals[2]} failed authentication"
        )
    after = store.key_ids_in_use() if not dry_run else before
    table = Table(title="stored keys per master key id" + (" (dry run)" if dry_run else ""))
    for column in ("key id", "keys", "state"):
        table.add_column(column)
    for kid, count in sorted(after.items()):
        state = (
            "primary"
            if kid == keyring.primary_id
            else "MISSING from keyring"
            if kid not in keyring
            else "to re-wrap"
        )
        table.add_row(kid, str(count), state)
    Console().print(table)
    if dry_run:
        console.print(f"{pending} key(s) would be re-wrapped under {keyring.primary_id!r}")
    if missing:
        raise _fail(
            f"{sum(missing.values())} key(s) use master key ids not in the keyring: "
            f"{', '.join(sorted(missing))}; add them back to KEYSCOPE_MASTER_KEYS"
        )


def _rewrap_all(store: "KeyStore", pending: int, batch_size: int) -> tuple[int, int, int]:
    rewrapped = changed = unreadable = 0
    after_id = 0
    columns = (TextColumn("re-wrapping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("rotate", total=pending)
        while True:
            batch = store.rewrap_batch(after_id, batch_size)
            if batch.rows == 0:
                break
            after_id = batch.last_id
            rewrapped += batch.rewrapped
            changed += batch.changed_meanwhile
            unreadable += batch.unreadable
            progress.advance(task, batch.rows)
    return rewrapped, changed, unreadable


@cli.command()
def demo(
    users: Annotated[int, typer.Option(min=1, max=500)] = 20,
    requests: Annotated[int, typer.Option("--requests", min=1, max=100, help="Per user.")] = 5,
) -> None:
    """End-to-end demo on loopback fakes: many users, concurrent requests, who got which key."""
    from keyscope.app.demo import run_demo

    problems = run_demo(users, requests, Console())
    if problems:
        raise typer.Exit(code=1)


legacy_cli = typer.Typer(help="Tools for retiring the legacy os.environ overlay.")
cli.add_typer(legacy_cli, name="legacy")


@legacy_cli.command("scan")
def legacy_scan(
    path: Annotated[Path, typer.Argument(exists=True, help="A .py file or a directory.")],
) -> None:
    """List legacy env reads of managed names and what no overlay can fix, `file:line` each.

    Exits 1 when anything is found (so CI can gate on it), 0 when the code is clean.
    """
    from keyscope.app.legacy.scan import scan_path

    findings = scan_path(path)
    for finding in findings:
        typer.echo(str(finding))
    kinds = Counter(f.kind.value for f in findings)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "nothing found"
    console.print(f"{len(findings)} finding(s) under {path}: {summary}")
    if findings:
        raise typer.Exit(code=1)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # One line per request (httpx) or per SDK call (google-genai's "AFC is enabled") is noise,
    # and so are Alembic's plugin announcements on every migrate.
    for chatty in ("httpx", "google_genai", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        cli()
    except ConfigurationError as exc:
        # Plain text, not rich: one unwrapped line, and `[postgres]` is not markup.
        print(f"keyscope: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
