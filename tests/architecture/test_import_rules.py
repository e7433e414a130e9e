"""The layering rules of docs/architecture.md, checked on the source text (stdlib `ast`).

Every import counts, wherever it sits: module level, inside a function, or under
`if TYPE_CHECKING:` (a type-only import still ties one layer to another).
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("app", "providers", "migrations", "containers.py")

# Modules that may import FastAPI or Starlette, each with the reason. Everything else (the
# composition root, settings, security, the key store, the providers, the overlay) stays
# usable without a web framework.
WEB_ALLOWED = {
    "app/main.py": "the app factory",
    "app/deps.py": "the one FastAPI <-> container seam",
    "app/problems.py": "the one handler that renders errors as problem+json",
    "app/scope.py": "RequestScopeMiddleware (pure ASGI)",
    "app/legacy/wiring/binding.py": "LegacyEnvMiddleware (pure ASGI)",
    "app/live_server.py": "runs an ASGI app under uvicorn (tests, demo)",
    "app/keys/router.py": "a router",
    "app/legacy/wiring/router.py": "a router",
    "app/routes/copilotkit.py": "a router",
    "app/routes/exa.py": "a router",
    "app/routes/gemini.py": "a router",
    "app/routes/health.py": "a router",
    "app/routes/metrics.py": "a router",
    "app/testing.py": "the testing kit: builds apps around test containers",
    "app/body_limit.py": "BodyLimitMiddleware (pure ASGI)",
    "app/openapi.py": "post-processes the app's OpenAPI document",
}
WEB_PACKAGES = ("fastapi", "starlette")

# Modules that may import `keyscope.containers`: the app factory and what it hands the
# container to, the seam, and the command-line entry points that build one.
CONTAINER_IMPORT_ALLOWED = {
    "app/main.py": "the app factory",
    "app/deps.py": "the seam",
    "app/legacy/wiring/binding.py": "given the container by the factory",
    "app/legacy/wiring/lifecycle.py": "given the container by the factory",
    "app/cli.py": "entry point: builds a container per command",
    "app/demo.py": "entry point: builds its own container",
    "app/legacy/wiring/guard.py": "type of the container the middleware hands it (TYPE_CHECKING)",
    "app/testing.py": "the testing kit: builds per-test containers",
    "app/pytest_plugin.py": "the testing kit's fixtures: a per-test container",
}
# Modules that may read the container off the app (`<x>.state.container`).
CONTAINER_STATE_ALLOWED = {
    "app/main.py": "the factory stores it there",
    "app/deps.py": "the seam reads it there",
}
# The overlay and the scanner know nothing of the web, the container or the key store.
LEGACY_LEAVES = ("app/legacy/overlay/", "app/legacy/scan/")
LEGACY_LEAF_IMPORTS = (
    "keyscope.app.legacy.overlay",
    "keyscope.app.legacy.scan",
    "keyscope.providers",
)


# The core takes plain values by constructor: it never reads settings and knows nothing of
# the seam, the routers, the factories or the composition root above it.
CORE = (
    "app/errors.py",
    "app/awaitables.py",
    "app/db.py",
    "app/security/",
    # app/keys/ but its router: the clients in app/clients.py use the lifecycle modules too.
    "app/keys/cache.py",
    "app/keys/coherence.py",
    "app/keys/events.py",
    "app/keys/health.py",
    "app/keys/listener.py",
    "app/keys/models.py",
    "app/keys/policy.py",
    "app/keys/quota.py",
    "app/keys/records.py",
    "app/keys/schemas.py",
    "app/keys/secret.py",
    "app/keys/store.py",
    "app/keys/usage.py",
    "app/keys/user_keys.py",
    "app/keys/validation.py",
    "app/scope.py",
    "app/scoped_providers.py",
    "app/clients.py",
    "app/legacy/overlay/",
    "app/legacy/scan/",
)
# The one sanctioned exception: RequestScopeMiddleware runs the legacy toggle's fail-closed
# check, because an app assembled by hand (without integrate()) has no other hook for it.
CORE_EXCEPTIONS = {("app/scope.py", "keyscope.app.legacy.wiring.guard")}
ABOVE_CORE = (
    "keyscope.app.settings",
    "keyscope.app.factories",
    "keyscope.app.deps",
    "keyscope.app.main",
    "keyscope.app.routes",
    "keyscope.app.keys.router",
    "keyscope.app.legacy.wiring",
    "keyscope.containers",
)


@dataclass(frozen=True)
class Import:
    """One imported module (`from a import b` yields `a` and `a.b`), where it is imported."""

    file: str
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def _module_of(file: str) -> str:
    parts = Path(file).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("keyscope", *parts))


def imports_in(file: str, source: str) -> Iterator[Import]:
    """Every import in `source` (the text of repository file `file`), relative ones resolved."""
    module = _module_of(file)
    package = module if file.endswith("__init__.py") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source, filename=file)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(file, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield Import(file, node.lineno, base)
            for alias in node.names:
                yield Import(file, node.lineno, f"{base}.{alias.name}")


def container_state_reads(file: str, source: str) -> Iterator[int]:
    """Lines where `source` reads or writes `<anything>.state.container`."""
    for node in ast.walk(ast.parse(source, filename=file)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "container"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "state"
        ):
            yield node.lineno


def _shipped_sources() -> dict[str, str]:
    sources: dict[str, str] = {}
    for top in SHIPPED:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            sources[file.relative_to(ROOT).as_posix()] = file.read_text()
    return sources


SOURCES = _shipped_sources()


def _all_imports() -> list[Import]:
    return [found for file, source in SOURCES.items() for found in imports_in(file, source)]


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations_of_provider_leaf(imports: list[Import]) -> list[str]:
    return [
        str(i)
        for i in imports
        if i.file.startswith("providers/")
        and (_is_under(i.module, "keyscope.app") or _is_under(i.module, "keyscope.containers"))
    ]


def violations_of_web_boundary(imports: list[Import]) -> list[str]:
    return [
        str(i)
        for i in imports
        if i.file not in WEB_ALLOWED and any(_is_under(i.module, p) for p in WEB_PACKAGES)
    ]


def violations_of_container_imports(imports: list[Import]) -> list[str]:
    return [
        str(i)
        for i in imports
        if i.file not in CONTAINER_IMPORT_ALLOWED and _is_under(i.module, "keyscope.containers")
    ]


def violations_of_legacy_leaves(imports: list[Import]) -> list[str]:
    return [
        str(i)
        for i in imports
        if i.file.startswith(LEGACY_LEAVES)
        and _is_under(i.module, "keyscope")
        and not any(_is_under(i.module, allowed) for allowed in LEGACY_LEAF_IMPORTS)
    ]


def violations_of_core(imports: list[Import]) -> list[str]:
    return [
        str(i)
        for i in imports
        if i.file.startswith(CORE)
        and any(_is_under(i.module, above) for above in ABOVE_CORE)
        and not any(
            # `from pkg import mod` yields both `pkg` and `pkg.mod`
            i.file == file and (_is_under(i.module, allowed) or _is_under(allowed, i.module))
            for file, allowed in CORE_EXCEPTIONS
        )
    ]


def test_the_walk_sees_the_imports_it_checks() -> None:
    """The collector finds known imports (a walk that found nothing would pass every rule)."""
    found = {(i.file, i.module) for i in _all_imports()}
    assert ("app/main.py", "fastapi") in found
    assert ("app/main.py", "keyscope.containers") in found
    assert ("providers/gemini.py", "keyscope.providers.errors") in found
    assert any(file == "containers.py" for file, _ in found)
    assert list(container_state_reads("x.py", "request.app.state.container.settings()")) == [1]


def test_relative_imports_are_resolved() -> None:
    """`from .. import x` inside providers/ is caught as the absolute module it names."""
    source = "from ..app import settings\nfrom . import errors\n"
    modules = {i.module for i in imports_in("providers/gemini.py", source)}
    assert {"keyscope.app", "keyscope.app.settings", "keyscope.providers.errors"} <= modules


def test_providers_import_nothing_from_app_or_containers() -> None:
    """`providers/` is a leaf: no `keyscope.app`, no `keyscope.containers`."""
    assert violations_of_provider_leaf(_all_imports()) == []


def test_web_framework_only_in_routers_seam_middleware_and_factory() -> None:
    """FastAPI/Starlette are imported only by the modules listed in WEB_ALLOWED."""
    assert violations_of_web_boundary(_all_imports()) == []


def test_only_factory_seam_and_entry_points_import_the_container() -> None:
    """`keyscope.containers` is imported only by the modules in CONTAINER_IMPORT_ALLOWED."""
    assert violations_of_container_imports(_all_imports()) == []


def test_only_factory_and_seam_read_the_container_off_the_app() -> None:
    """`request.app.state.container` appears only in the app factory and the seam."""
    found = [
        f"{file}:{line}"
        for file, source in SOURCES.items()
        if file not in CONTAINER_STATE_ALLOWED
        for line in container_state_reads(file, source)
    ]
    assert found == []


def test_core_reads_no_settings_and_knows_nothing_above_it() -> None:
    """Security, db, key store, UserKeys, request scope and clients import nothing above them."""
    assert violations_of_core(_all_imports()) == []


def test_every_key_module_but_the_router_is_core() -> None:
    """A module added to app/keys/ is held to the core's rules unless it is listed here."""
    keys = {f for f in SOURCES if f.startswith("app/keys/") and not f.endswith("__init__.py")}
    assert sorted(keys - set(CORE) - {"app/keys/router.py"}) == []


def test_overlay_and_scanner_are_leaves() -> None:
    """The legacy overlay and scanner import only each other and `keyscope.providers`."""
    assert violations_of_legacy_leaves(_all_imports()) == []


@pytest.mark.parametrize(
    ("file", "source", "rule"),
    [
        ("providers/exa.py", "from keyscope.app.settings import Settings", "provider"),
        ("providers/exa.py", "import keyscope.containers", "provider"),
        ("app/keys/store.py", "from fastapi import HTTPException", "web"),
        ("containers.py", "from starlette.requests import Request", "web"),
        ("app/routes/gemini.py", "from keyscope.containers import Container", "container"),
        ("app/legacy/overlay/environ.py", "from keyscope.app.scope import current", "legacy"),
        ("app/keys/store.py", "from keyscope.app.settings import Settings", "core"),
        ("app/security/tokens.py", "from keyscope.app import deps", "core"),
    ],
)
def test_each_rule_rejects_a_forbidden_import(file: str, source: str, rule: str) -> None:
    """A forbidden import added to a real file is reported by its rule."""
    check = {
        "provider": violations_of_provider_leaf,
        "web": violations_of_web_boundary,
        "container": violations_of_container_imports,
        "legacy": violations_of_legacy_leaves,
        "core": violations_of_core,
    }[rule]
    assert check(list(imports_in(file, source))) != []


def test_allow_lists_name_existing_files() -> None:
    """Every allowed module exists: a stale entry would silently widen a rule."""
    listed = {*WEB_ALLOWED, *CONTAINER_IMPORT_ALLOWED, *CONTAINER_STATE_ALLOWED}
    assert sorted(f for f in listed if f not in SOURCES) == []
    for prefix in (*CORE, *LEGACY_LEAVES):
        assert any(f.startswith(prefix) for f in SOURCES), prefix
