"""The overlay's fail-closed check: with `KEYSCOPE_LEGACY_ENV=overlay`, no request may run
unless the overlay is installed *and* `LegacyEnvMiddleware` binds each request's keys.

Without the overlay, legacy `os.getenv("GEMINI_API_KEY")` reads the operator's key for every
user; without the binding middleware, it reads nothing. An app assembled by hand (request
scope middleware and a container, but not `integrate()`) gets either silently, so
`RequestScopeMiddleware` asks this module at start-up (turning the ASGI lifespan start-up into
a failure with one line) and again before the first request (for servers or mounted sub-apps
that never run a lifespan), and refuses requests while the check fails.
"""

from typing import TYPE_CHECKING, Any

from keyscope.app.legacy import overlay
from keyscope.app.legacy.wiring.binding import LegacyEnvMiddleware

if TYPE_CHECKING:
    from keyscope.containers import Container

_MAX_DEPTH = 64  # middleware chains are short; this only bounds a cyclic `.app` graph


def overlay_required(container: "Container | None") -> bool:
    """Whether the configuration asks for the overlay (the container's settings, else the env)."""
    if container is not None:
        return container.settings().legacy_env == "overlay"
    from keyscope.app.settings import Settings

    return Settings().legacy_env == "overlay"


def binds_keys(asgi_app: Any) -> bool:
    """Whether `LegacyEnvMiddleware` is somewhere inside this ASGI app's `.app` chain."""
    node = asgi_app
    for _ in range(_MAX_DEPTH):
        if isinstance(node, LegacyEnvMiddleware):
            return True
        node = getattr(node, "app", None)
        if node is None:
            return False
    return False


def overlay_problem(inner_app: Any) -> str | None:
    """Why requests must not run under the overlay toggle right now (one line), or None."""
    if not overlay.is_installed():
        return (
            "KEYSCOPE_LEGACY_ENV=overlay but the legacy env overlay is not installed, so legacy "
            "os.getenv() reads would get the operator's key: mount keyscope with "
            "keyscope.app.main.integrate(app) on the app the server runs (its lifespan "
            "installs the overlay), or set KEYSCOPE_LEGACY_ENV=off"
        )
    if not binds_keys(inner_app):
        return (
            "KEYSCOPE_LEGACY_ENV=overlay but LegacyEnvMiddleware is not inside "
            "RequestScopeMiddleware, so legacy os.getenv() reads would not get the user's key: "
            "mount keyscope with keyscope.app.main.integrate(app) instead of adding the "
            "middleware by hand"
        )
    return None
