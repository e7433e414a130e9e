"""What keyscope learns about a key from errors: records it, counts it, refuses the key next.

Called by the problem handler for every error a request raises (error paths only, never the
success path):

* the provider rejected the user's own key during normal use → the key becomes `invalid`
  (if it is still the key that was sent: a replace that raced the call is left alone) and a
  `rejected-by-provider` event is written; the next request is refused without an upstream
  round trip. The operator's key is never marked: a rejection of it is only counted;
* a stored key failed to decrypt → `unreadable`, with its event;
* every provider error is counted by kind, platform-quota refusals by provider.
"""

import logging

from keyscope.app.clients import served_own_key
from keyscope.app.errors import KeyUnreadable, PlatformQuotaExceeded
from keyscope.app.keys.events import KeyAction
from keyscope.app.keys.records import KeyStatus
from keyscope.app.keys.store import KeyStore
from keyscope.app.metrics import Metrics
from keyscope.providers import ProviderName
from keyscope.providers.errors import KeyRejected, ProviderError

log = logging.getLogger("keyscope.keys")

_KINDS = {
    "KeyRejected": "key_rejected",
    "RateLimited": "rate_limited",
    "BadUpstreamRequest": "bad_request",
    "Unavailable": "unavailable",
    "UpstreamTimeout": "timeout",
}


class KeyHealth:
    def __init__(self, store: KeyStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    async def on_error(self, exc: Exception) -> None:
        try:
            await self._react(exc)
        except Exception as failure:  # the original error's response must still go out
            log.warning("could not record key health: %s", type(failure).__name__)

    async def _react(self, exc: Exception) -> None:
        if isinstance(exc, ProviderError):
            kind = _KINDS.get(type(exc).__name__, "other")
            self._metrics.upstream_errors.labels(exc.provider.value, kind).inc()
            if isinstance(exc, KeyRejected):
                await self._rejected(exc.provider)
        elif isinstance(exc, PlatformQuotaExceeded):
            self._metrics.quota_rejections.labels(exc.provider).inc()
        elif isinstance(exc, KeyUnreadable) and exc.user_id and exc.provider and exc.fingerprint:
            await self._store.mark(
                exc.user_id,
                ProviderName(exc.provider),
                exc.fingerprint,
                KeyStatus.UNREADABLE,
                KeyAction.UNREADABLE,
            )

    async def _rejected(self, provider: ProviderName) -> None:
        record = served_own_key(provider)
        if record is None:
            return  # the platform key, or a key that never reached the provider
        await self._store.mark(
            record.user_id, provider, record.fingerprint, KeyStatus.INVALID, KeyAction.REJECTED
        )
