"""What the store returns for a stored key: encrypted, plus the masked metadata."""

from dataclasses import dataclass, field
from datetime import datetime

from keyscope.app.security.envelope import Sealed
from keyscope.providers import ProviderName


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


UserRecords = dict[ProviderName, StoredKey]
