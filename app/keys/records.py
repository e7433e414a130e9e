"""What the store returns for a stored key: encrypted, plus the masked metadata."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from keyscope.app.security.envelope import Sealed
from keyscope.providers import ProviderName


class KeyStatus(StrEnum):
    """A stored key's health, as `GET /v1/keys` shows it.

    `active`, `unverified`, `invalid` and `unreadable` are stored; `expired` is derived from
    `expires_at` at read time, so a key expires on time with no job running.
    """

    ACTIVE = "active"
    UNVERIFIED = "unverified"  # the provider could not be asked (down, timed out, no check call)
    INVALID = "invalid"  # the provider rejected it; refused until replaced or re-verified
    EXPIRED = "expired"
    UNREADABLE = "unreadable"  # its ciphertext failed to open


@dataclass(frozen=True)
class StoredKey:
    """A stored key as the database holds it: `sealed` is ciphertext, never plaintext."""

    user_id: str
    provider: ProviderName
    sealed: Sealed = field(repr=False)
    last4: str
    fingerprint: str
    status: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def effective_status(self, now: datetime) -> KeyStatus:
        if self.status == KeyStatus.UNREADABLE:
            return KeyStatus.UNREADABLE
        if self.is_expired(now):
            return KeyStatus.EXPIRED
        return KeyStatus(self.status)


UserRecords = dict[ProviderName, StoredKey]
