"""State that lives exactly as long as one request: keyed by the identity of its KeySource.

The overlay knows a request only through the object `current_source()` returns, so that
object is the key. Not a ContextVar: a write made in a worker thread (`asyncio.to_thread`)
or a child task must be seen by the rest of the same request, and a ContextVar set there
would stay there. Not a WeakKeyDictionary: it would need the source to be hashable, and its
lookup costs a weakref per read; here a plain dict keyed by `id()` holds a weak reference
whose callback drops the entry when the source dies, before its id can be reused.
"""

import threading
import weakref
from collections.abc import Hashable

from keyscope.app.legacy.overlay.errors import OverlayError


class RequestState:
    """What one request keeps: its env writes and per-request objects (e.g. SDK managers)."""

    __slots__ = ("env", "objects")

    def __init__(self) -> None:
        self.env: dict[str, str | None] = {}  # managed name -> written value, None = deleted
        self.objects: dict[Hashable, object] = {}


class RequestStates:
    """Every running request's `RequestState`, owned by one installed overlay.

    `entries` maps id(source) -> (weak reference to the source, its state). The read path
    tests `entries` for emptiness itself (no method call) and skips all lookups while no
    request has written a managed name or stored an object.
    """

    __slots__ = ("_lock", "entries")

    def __init__(self) -> None:
        self.entries: dict[int, tuple[weakref.ref[object], RequestState]] = {}
        self._lock = threading.Lock()

    def state_for(self, source: object, *, create: bool) -> RequestState | None:
        """`source`'s state; with `create`, made on first use (None only when not creating)."""
        entries = self.entries
        entry = entries.get(id(source))
        if entry is not None and entry[0]() is source:
            return entry[1]
        if not create:
            return None
        with self._lock:
            entry = entries.get(id(source))
            if entry is not None and entry[0]() is source:
                return entry[1]
            key = id(source)

            def forget(ref: "weakref.ref[object]") -> None:
                current = entries.get(key)
                if current is not None and current[0] is ref:
                    del entries[key]

            try:
                ref = weakref.ref(source, forget)
            except TypeError:
                raise OverlayError(
                    f"{type(source).__name__} does not support weak references, so "
                    "request-local state (env writes, per-request SDK state) cannot be tied "
                    "to its lifetime: return a weakref-able KeySource from current_source()"
                ) from None
            state = RequestState()
            entries[key] = (ref, state)
            return state

    def clear(self) -> None:
        """Forget every request's state (the overlay is being uninstalled)."""
        with self._lock:
            self.entries.clear()
