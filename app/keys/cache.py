"""Per-process cache of users' *encrypted* key records.

Holding ciphertext only means a heap dump or a bug that leaks the cache leaks nothing usable;
decryption happens per request, per provider used (cheap: see docs/performance.md).

A read that began before a write could otherwise put the old record back after the write
evicted it, and serve it until the TTL ran out. Every invalidation bumps a generation, and a
fill is stored only if the generation it started from is still current
(tests/unit/test_record_cache.py).

`suspend()` turns the cache into a read-through while the process cannot learn about writes
made by its peers (see app/keys/coherence.py); `resume()` starts it again from empty.
"""

import itertools
import time
from collections import OrderedDict
from collections.abc import Mapping
from threading import Lock
from typing import Generic, TypeVar

V = TypeVar("V")


class RecordCache(Generic[V]):
    """A TTL + size-bounded LRU keyed by user id, with fill guarded by generations."""

    def __init__(self, *, ttl_seconds: float, max_users: int) -> None:
        self._ttl = ttl_seconds
        self._max_users = max_users
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._generations: OrderedDict[str, int] = OrderedDict()
        # Generation assumed for users whose counter was evicted: never below any evicted value,
        # so a fill that started before an evicted invalidation still fails its check.
        self._generation_floor = 0
        self._counter = itertools.count(1)
        self._lock = Lock()
        self._suspended = False
        self._serving = ttl_seconds > 0  # enabled and not suspended: the one flag `get` reads
        self.hits = 0  # lookups answered from the cache (read by the metrics endpoint)
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    @property
    def serving(self) -> bool:
        """False when caching is off or suspended: every read goes to the database."""
        return self._serving

    def get(self, user_id: str) -> V | None:
        if not self._serving:
            return None
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is None:
                self.misses += 1
                return None
            stored_at, value = entry
            if time.monotonic() - stored_at > self._ttl:
                del self._entries[user_id]
                self.misses += 1
                return None
            self._entries.move_to_end(user_id)
            self.hits += 1
            return value

    def generation(self, user_id: str) -> int:
        """Take before reading the database; hand back to `fill`."""
        with self._lock:
            return self._generations.get(user_id, self._generation_floor)

    def fill(self, user_id: str, value: V, generation: int) -> bool:
        """Store `value` unless the user was invalidated since `generation` was taken."""
        with self._lock:
            if not self._serving:
                return False
            if self._generations.get(user_id, self._generation_floor) != generation:
                return False
            self._entries[user_id] = (time.monotonic(), value)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self._max_users:
                self._entries.popitem(last=False)
            return True

    def invalidate(self, user_id: str) -> None:
        with self._lock:
            self._entries.pop(user_id, None)
            self._generations[user_id] = next(self._counter)
            self._generations.move_to_end(user_id)
            while len(self._generations) > 4 * self._max_users:
                _, evicted = self._generations.popitem(last=False)
                self._generation_floor = max(self._generation_floor, evicted)

    def clear(self) -> None:
        """Drop every entry, and fail every fill already in flight (whoever it is for)."""
        with self._lock:
            self._clear_locked()

    def suspend(self) -> None:
        """Flush, then read through (no entry is stored or served) until `resume()`."""
        with self._lock:
            self._suspended = True
            self._serving = False
            self._clear_locked()

    def resume(self) -> None:
        """Flush again (fills begun while suspended fail), then cache normally."""
        with self._lock:
            self._clear_locked()
            self._suspended = False
            self._serving = self.enabled

    def _clear_locked(self) -> None:
        # Every counter value handed out so far is below the new floor, so every generation a
        # pending fill holds (a user's own or the old floor) no longer matches.
        self._entries.clear()
        self._generations.clear()
        self._generation_floor = next(self._counter)

    def snapshot(self) -> Mapping[str, V]:
        """Current values (for tests that assert the cache holds ciphertext only)."""
        with self._lock:
            return {user: value for user, (_, value) in self._entries.items()}
