"""Prometheus metrics for `GET /metrics`, on a registry of the app's own.

Why `prometheus-client`: it is the reference implementation of the exposition format that
Prometheus, Grafana Agent and OpenTelemetry collectors scrape, small and pure Python; the
tests parse our output with its parser.

Labels carry provider names, key origins, error kinds, outcomes and legacy call sites
(`file:line` in the application's code): never a user id, a key, a fingerprint or a token.

The busiest counts (requests by provider and origin, cache hits and misses) are not counted
here: they are read at scrape time from the usage tracker and the record cache, which count
them anyway, so the request path pays for one counter, not two.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from keyscope.app.keys.cache import RecordCache
from keyscope.app.keys.records import UserRecords
from keyscope.app.keys.usage import UsageTracker
from keyscope.app.legacy import overlay

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Live(Collector):
    def __init__(self, usage: UsageTracker, cache: RecordCache[UserRecords]) -> None:
        self._usage = usage
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "keyscope_provider_requests",
            "Requests served with a provider key, by provider and key origin (user, platform).",
            labels=["provider", "origin"],
        )
        for (provider, origin), count in sorted(self._usage.totals().items()):
            requests.add_metric([provider.value, origin.value], count)
        yield requests
        cache = CounterMetricFamily(
            "keyscope_key_cache_lookups",
            "Lookups of users' encrypted key records in the per-process cache.",
            labels=["result"],
        )
        cache.add_metric(["hit"], self._cache.hits)
        cache.add_metric(["miss"], self._cache.misses)
        yield cache
        legacy = CounterMetricFamily(
            "keyscope_legacy_env_reads",
            "Reads of managed environment names through the legacy overlay, by call site.",
            labels=["site"],
        )
        for site, count in overlay.read_counts().items():
            legacy.add_metric([site], count)
        yield legacy


class Metrics:
    """The app's counters and its registry."""

    def __init__(self, usage: UsageTracker, cache: RecordCache[UserRecords]) -> None:
        self.registry = CollectorRegistry()
        self.upstream_errors = Counter(
            "keyscope_upstream_errors",
            "Provider calls that failed, by provider and kind (key_rejected, rate_limited, ...).",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.validations = Counter(
            "keyscope_key_validations",
            "Key checks on save and verify, by provider and outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.quota_rejections = Counter(
            "keyscope_platform_quota_rejections",
            "Requests refused because the user's platform-key allowance was spent.",
            ["provider"],
            registry=self.registry,
        )
        self.registry.register(_Live(usage, cache))

    def render(self) -> bytes:
        return generate_latest(self.registry)
