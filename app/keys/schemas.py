"""Request and response bodies of the keys API. Responses never carry a key, only its mask."""

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from keyscope.app.keys.records import StoredKey
from keyscope.providers import ProviderName

MAX_KEY_CHARS = 4096
# Keys travel in HTTP headers, which carry visible ASCII only; anything else is a paste error
# (a newline, a smart quote) that would otherwise fail later, upstream, as a 500.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


class KeyIn(BaseModel):
    """PUT body. Write-only: there is no placeholder value that means 'keep the old key'."""

    model_config = ConfigDict(extra="forbid")

    api_key: StrictStr = Field(min_length=1, max_length=MAX_KEY_CHARS)

    @field_validator("api_key")
    @classmethod
    def _visible_ascii(cls, value: str) -> str:
        if not _VISIBLE_ASCII.fullmatch(value):
            # The message never repeats the value: validation errors are logged and returned.
            raise ValueError("must be visible ASCII without whitespace or control characters")
        return value


class KeyOut(BaseModel):
    provider: ProviderName
    last4: str
    fingerprint: str
    status: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, stored: StoredKey) -> "KeyOut":
        return cls(
            provider=stored.provider,
            last4=stored.last4,
            fingerprint=stored.fingerprint,
            status=stored.status,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
        )


class KeyList(BaseModel):
    keys: list[KeyOut]
