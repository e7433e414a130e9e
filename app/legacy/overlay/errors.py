"""The overlay's exceptions. None of them ever carries a key: names of variables only."""


class OverlayError(RuntimeError):
    """Misuse of the overlay (install twice, a foreign `os.environ`, an unweakrefable source)."""


class OverlayAlreadyInstalled(OverlayError):
    """install() while installed: uninstall() first (a second source or mode is not merged)."""


class ManagedNameOutsideRequest(OverlayError):
    """Strict mode: a managed name was read or written while no request was running."""

    def __init__(self, name: str, action: str) -> None:
        # The variable's name only: never its value, which the message must not carry.
        super().__init__(
            f"{name} was {action} outside a request while the keyscope legacy overlay is "
            "installed in strict mode: managed names hold the requesting user's key only "
            "inside a request. Run this code inside a request, or inject the key instead."
        )
        self.name = name
