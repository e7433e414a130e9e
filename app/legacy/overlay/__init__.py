"""The per-request overlay on `os.environ`: see `environ` for the rules it enforces."""

from keyscope.app.legacy.overlay.environ import (
    MANAGED_NAMES,
    KeySource,
    OutsideRequest,
    install,
    is_installed,
    live_request_states,
    read_counts,
    request_local,
    reset_counts,
    uninstall,
)
from keyscope.app.legacy.overlay.errors import (
    ManagedNameOutsideRequest,
    OverlayAlreadyInstalled,
    OverlayError,
)

__all__ = [
    "MANAGED_NAMES",
    "KeySource",
    "ManagedNameOutsideRequest",
    "OutsideRequest",
    "OverlayAlreadyInstalled",
    "OverlayError",
    "install",
    "is_installed",
    "live_request_states",
    "read_counts",
    "request_local",
    "reset_counts",
    "uninstall",
]
