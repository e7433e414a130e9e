"""Request and response bodies of the keys API. Responses never carry a key, only its mask."""

import re
from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, field_validator

from keyscope.app.keys.events import KeyEvent
from keyscope.app.keys.records import KeyStatus, StoredKey
from keyscope.providers import ProviderName

MAX_KEY_CHARS = 4096
# Keys travel in HTTP headers, which carry visible ASCII only; anything else is a paste error
# (a newline, a smart quote) that would otherwise fail later, upstream, as a 500.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


class KeyIn(BaseModel):
    """PUT body. Write-only: there is no placeholder value that means 'keep the old key'."""

    model_config = ConfigDict(extra="forbid")

    api_key: StrictStr = Field(min_length=1, max_length=MAX_KEY_CHARS)
    expires_at: AwareDatetime | None = None  # ISO 8601 with a UTC offset; optional

    @field_validator("api_key")
    @classmethod
    def _visible_ascii(cls, value: str) -> str:
        if not _VISIBLE_ASCII.fullmatch(value):
            # The message never repeats the value: validation errors are logged and returned.
            raise ValueError("must be visible ASCII without whitespace or control characters")
        return value


class DailyUsage(BaseModel):
    day: date
    origin: str  # user | platform
    requests: int


class KeyOut(BaseModel):
    provider: ProviderName
    last4: str
    fingerprint: str
    status: KeyStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    # Why the key is `unverified`, on the PUT or verify answer that checked it; else None.
    status_reason: str | None = None
    # Requests per UTC day and key origin for this provider (last 30 days, newest first), as
    # of the usage counters' last flush. Only `GET /v1/keys` fills it in.
    usage: list["DailyUsage"] = []

    @classmethod
    def of(
        cls,
        stored: StoredKey,
        now: datetime,
        *,
        readable: bool = True,
        reason: str | None = None,
        usage: list[DailyUsage] | None = None,
    ) -> "KeyOut":
        status = stored.effective_status(now) if readable else KeyStatus.UNREADABLE
        return cls(
            provider=stored.provider,
            last4=stored.last4,
            fingerprint=stored.fingerprint,
            status=status,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            expires_at=stored.expires_at,
            last_used_at=stored.last_used_at,
            status_reason=reason if status is KeyStatus.UNVERIFIED else None,
            usage=usage or [],
        )


class KeyList(BaseModel):
    keys: list[KeyOut]


class EventOut(BaseModel):
    id: int
    provider: str
    action: str
    fingerprint: str | None
    at: datetime
    request_id: str | None

    @classmethod
    def of(cls, event: KeyEvent) -> "EventOut":
        return cls(
            id=event.id,
            provider=event.provider,
            action=event.action,
            fingerprint=event.fingerprint,
            at=event.at,
            request_id=event.request_id,
        )


class EventPage(BaseModel):
    events: list[EventOut]
    next_before: int | None  # pass as `?before=` for the next (older) page; None at the end
