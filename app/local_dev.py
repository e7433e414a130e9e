"""Local mode: generate a dev keyring and JWT secret once in the state directory (see
`Settings.var_dir`, `KEYSCOPE_STATE_DIR`), and say so loudly."""

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from keyscope.app.security.keyring import new_master_key_entry
from keyscope.app.settings import Settings

log = logging.getLogger("keyscope")


def with_local_secrets(settings: Settings) -> Settings:
    """Fill a missing keyring / JWT configuration from the state directory in local mode (never
    production)."""
    if settings.is_production:
        return settings
    update: dict[str, SecretStr] = {}
    if settings.master_keys is None:
        update["master_keys"] = SecretStr(
            _read_or_create(
                settings.var_dir / "dev-master-keys",
                lambda: new_master_key_entry("dev1"),
                "keys stored under it are unreadable without this file",
            )
        )
    if not (settings.jwt_secret or settings.jwt_public_key or settings.jwt_jwks_url):
        update["jwt_secret"] = SecretStr(
            _read_or_create(
                settings.var_dir / "dev-jwt-secret",
                lambda: secrets.token_urlsafe(48),
                "mint tokens with `keyscope token SUB`",
            )
        )
    return settings.model_copy(update=update) if update else settings


def _read_or_create(path: Path, make: Callable[[], str], note: str) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    # O_EXCL: two processes starting at once must not each write a different secret;
    # 0600 from the first byte, not chmod-ed after.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    log.warning(
        "LOCAL MODE: generated %s (%s). Never use it in production: set "
        "KEYSCOPE_DEPLOY_ENV=production with real KEYSCOPE_MASTER_KEYS and JWT settings.",
        path,
        note,
    )
    return value
