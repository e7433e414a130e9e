"""`UserKeys`: the keys one request may use, chosen by the key policy (`KeyPolicy`,
app/keys/policy.py, says which platform keys may stand in; this module applies the rules).

The rules (README "Key policy"):
* the caller's own stored key always wins;
* otherwise, in production, the platform (operator's) key only for providers listed in
  `KEYSCOPE_PLATFORM_FALLBACK`; in local mode the platform key for every provider (a
  developer's own keys from `.env`);
* otherwise the provider has no key for this request: `require()` raises a 409 problem;
* a stored key that is `invalid` (its provider rejected it) or past its `expires_at` is a 409
  problem of its own: never sent upstream and never replaced by the platform key, even where
  the fallback policy would serve a user who has no key.

Stored keys decrypt lazily, per provider, at most once per request; a key that fails to
decrypt fails closed (never ciphertext upstream, never a silent fallback).
"""

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from keyscope.app.awaitables import MaybeAwaitable
from keyscope.app.errors import KeyExpired, KeyInvalid, KeyUnreadable, MissingKey
from keyscope.app.keys.policy import KeyOrigin, KeyPolicy
from keyscope.app.keys.records import KeyStatus, StoredKey, UserRecords
from keyscope.app.keys.secret import Secret
from keyscope.app.keys.store import KeyStore
from keyscope.app.security.envelope import EnvelopeCipher, SealBroken, UnknownMasterKey
from keyscope.app.security.tokens import Principal
from keyscope.providers import ProviderName

log = logging.getLogger("keyscope.keys")


@dataclass(frozen=True)
class ResolvedKey:
    """What `UserKeys.get/require` returns: the plaintext, wrapped, and whose key it is."""

    secret: Secret
    origin: KeyOrigin


class UserKeys:
    """Immutable view of one user's keys for one request; decrypts on first use per provider."""

    # __weakref__: the legacy overlay ties request-local env writes to this object's lifetime.
    __slots__ = ("__weakref__", "_cipher", "_lock", "_opened", "_policy", "_records", "user_id")

    def __init__(
        self, user_id: str, records: UserRecords, cipher: EnvelopeCipher, policy: KeyPolicy
    ) -> None:
        self.user_id = user_id
        self._records = records
        self._cipher = cipher
        self._policy = policy
        self._opened: dict[ProviderName, ResolvedKey | None] = {}
        self._lock = threading.Lock()

    def get(self, provider: ProviderName) -> ResolvedKey | None:
        """The key this request may use for `provider`, or None."""
        try:
            return self._opened[provider]
        except KeyError:
            pass
        with self._lock:
            if provider not in self._opened:
                self._opened[provider] = self._resolve(provider)
            return self._opened[provider]

    def require(self, provider: ProviderName) -> ResolvedKey:
        resolved = self.get(provider)
        if resolved is None:
            raise MissingKey(
                f"No {provider.value} key is stored for this user: "
                f"store one with PUT /v1/keys/{provider.value}."
            )
        return resolved

    def secret_for(self, provider: ProviderName) -> str | None:
        """The plaintext key or None: the legacy overlay's `KeySource` view of this object."""
        resolved = self.get(provider)
        return resolved.secret.reveal() if resolved is not None else None

    def stored(self, provider: ProviderName) -> StoredKey | None:
        """The user's stored record for `provider` (encrypted), if any."""
        return self._records.get(provider)

    def served_own_key(self, provider: ProviderName) -> StoredKey | None:
        """The stored record whose key this request used for `provider`, if it used one."""
        opened = self._opened.get(provider)
        if opened is None or opened.origin is not KeyOrigin.USER:
            return None
        return self._records.get(provider)

    def _resolve(self, provider: ProviderName) -> ResolvedKey | None:
        record = self._records.get(provider)
        if record is not None:
            _refuse_unusable(record)
            try:
                secret = self._cipher.open(
                    record.sealed, owner=self.user_id, provider=provider.value
                )
            except UnknownMasterKey as exc:
                log.error("key unreadable user=%s provider=%s: %s", self.user_id, provider, exc)
                raise KeyUnreadable(
                    f"The stored {provider.value} key was encrypted with master key id "
                    f"{exc.key_id!r}, which is not in the keyring; store the key again.",
                    **_which(record),
                ) from None
            except SealBroken as exc:
                log.error("key unreadable user=%s provider=%s: %s", self.user_id, provider, exc)
                raise KeyUnreadable(
                    f"The stored {provider.value} key failed authentication (master key id "
                    f"{exc.key_id!r}); store the key again.",
                    **_which(record),
                ) from None
            return ResolvedKey(Secret(secret), KeyOrigin.USER)
        platform = self._policy.platform_key(provider)
        if platform is not None:
            log.info("platform key used user=%s provider=%s", self.user_id, provider.value)
            return ResolvedKey(Secret(platform), KeyOrigin.PLATFORM)
        return None

    def __repr__(self) -> str:
        return f"UserKeys(user_id={self.user_id!r}, stored={sorted(self._records)})"


def _which(record: StoredKey) -> dict[str, str]:
    return {
        "user_id": record.user_id,
        "provider": record.provider.value,
        "fingerprint": record.fingerprint,
    }


def _refuse_unusable(record: StoredKey) -> None:
    name = record.provider.value
    if record.status == KeyStatus.INVALID:
        raise KeyInvalid(
            f"The stored {name} key was rejected by {name}; replace it with PUT /v1/keys/{name} "
            f"or re-check it with POST /v1/keys/{name}/verify."
        )
    if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
        raise KeyExpired(
            f"The stored {name} key expired at {record.expires_at.isoformat()}; "
            f"replace it with PUT /v1/keys/{name}."
        )


def load_user_keys(
    principal: Principal, store: KeyStore, policy: KeyPolicy
) -> MaybeAwaitable[UserKeys]:
    """The request's UserKeys, nothing decrypted: at once on a cache hit (no task, no thread
    hop), else an awaitable that runs the one query in a worker thread."""
    records = store.cached_records(principal.subject)
    if records is not None:
        return UserKeys(principal.subject, records, store.cipher, policy)
    return _load_user_keys(principal, store, policy)


async def _load_user_keys(principal: Principal, store: KeyStore, policy: KeyPolicy) -> UserKeys:
    records = await store.records_for(principal.subject)  # the cache missed a moment ago
    return UserKeys(principal.subject, records, store.cipher, policy)
