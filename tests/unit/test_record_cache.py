"""RecordCache: the fill guard against stale reads, its TTL and size bounds, and suspension."""

import pytest

from keyscope.app.keys import cache as cache_module
from keyscope.app.keys.cache import RecordCache


class FakeClock:
    """Stands in for the `time` module inside keyscope.app.keys.cache only."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _cache(*, ttl: float = 60.0, max_users: int = 10) -> RecordCache[str]:
    return RecordCache(ttl_seconds=ttl, max_users=max_users)


def test_fill_with_the_current_generation_is_stored() -> None:
    """A read with no write in between fills the cache and is served from it."""
    cache = _cache()
    generation = cache.generation("alice")
    assert cache.fill("alice", "v1", generation)
    assert cache.get("alice") == "v1"


def test_fill_that_started_before_a_write_is_refused() -> None:
    """A read that began before an invalidation cannot put its old value back afterwards."""
    cache = _cache()
    generation = cache.generation("alice")  # the read starts, queries the old row...
    cache.invalidate("alice")  # ...a write commits and evicts...
    assert not cache.fill("alice", "old", generation)  # ...and the read's fill is dropped
    assert cache.get("alice") is None
    fresh = cache.generation("alice")
    assert cache.fill("alice", "new", fresh)
    assert cache.get("alice") == "new"


def test_invalidating_one_user_leaves_other_fills_alone() -> None:
    """Generations are per user: bob's write does not cancel alice's fill."""
    cache = _cache()
    generation = cache.generation("alice")
    cache.invalidate("bob")
    assert cache.fill("alice", "v1", generation)


def test_stale_fill_refused_even_after_its_generation_was_evicted() -> None:
    """Generations of many other users push alice's out; her stale fill still fails."""
    cache = _cache(max_users=2)
    generation = cache.generation("alice")
    cache.invalidate("alice")
    for i in range(20):  # more than the 4 * max_users generations kept
        cache.invalidate(f"user-{i}")
    assert not cache.fill("alice", "old", generation)
    assert cache.get("alice") is None


def test_clear_refuses_fills_that_started_before_it() -> None:
    """clear() (key rotation) counts as an invalidation of every cached user."""
    cache = _cache()
    cache.fill("alice", "v1", cache.generation("alice"))
    generation = cache.generation("alice")
    cache.clear()
    assert not cache.fill("alice", "old", generation)
    assert cache.get("alice") is None


def test_size_bound_evicts_the_least_recently_used() -> None:
    """At most max_users entries; the least recently read goes first."""
    cache = _cache(max_users=2)
    for user in ("a", "b"):
        cache.fill(user, user, cache.generation(user))
    assert cache.get("a") == "a"  # a is now the most recent
    cache.fill("c", "c", cache.generation("c"))
    assert cache.snapshot() == {"a": "a", "c": "c"}


def test_entries_expire_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry older than the TTL is not served (and is dropped)."""
    clock = FakeClock()
    monkeypatch.setattr(cache_module, "time", clock)
    cache = _cache(ttl=30.0)
    cache.fill("alice", "v1", cache.generation("alice"))
    clock.now += 29.0
    assert cache.get("alice") == "v1"
    clock.now += 2.0
    assert cache.get("alice") is None
    assert cache.snapshot() == {}


def test_ttl_zero_disables_the_cache() -> None:
    """KEYSCOPE_KEY_CACHE_TTL=0: nothing is stored, nothing served."""
    cache = _cache(ttl=0)
    assert not cache.fill("alice", "v1", cache.generation("alice"))
    assert cache.get("alice") is None


def test_clear_fails_a_fill_in_flight_for_an_uncached_user() -> None:
    """A fill that began before a flush is refused, even for a user not cached then."""
    cache = _cache()
    generation = cache.generation("alice")
    cache.clear()
    assert cache.fill("alice", "old", generation) is False
    assert cache.get("alice") is None
    assert cache.fill("alice", "new", cache.generation("alice")) is True
    assert cache.get("alice") == "new"


def test_suspended_cache_neither_serves_nor_stores_until_resumed() -> None:
    """suspend(): flushed and read-through; resume(): flushed again, then caching."""
    cache = _cache()
    cache.fill("alice", "v1", cache.generation("alice"))
    cache.suspend()
    assert not cache.serving
    assert cache.get("alice") is None
    during = cache.generation("bob")
    assert cache.fill("bob", "v1", during) is False
    cache.resume()
    assert cache.serving
    assert cache.fill("bob", "v1", during) is False  # begun while suspended
    assert cache.fill("bob", "v2", cache.generation("bob")) is True
    assert cache.get("bob") == "v2"
