"""Per-user daily limits on the operator's (platform) key, counted in the database.

Every request the platform key serves takes one unit with a single statement,

    INSERT … VALUES (user, provider, today, 1)
    ON CONFLICT DO UPDATE SET requests = requests + 1 WHERE requests < limit
    RETURNING requests

which is atomic on both engines: no read-then-write, so workers and instances sharing the
database never serve more than the limit between them, and a refused request does not count.
Days are UTC days; a refusal says how long until the next one starts.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from keyscope.app.db import database_errors, run_in_db_thread
from keyscope.app.errors import PlatformQuotaExceeded
from keyscope.app.keys.models import platform_quota_usage
from keyscope.providers import ProviderName


@dataclass(frozen=True)
class PlatformQuota:
    engine: Engine
    limits: dict[ProviderName, int]

    def applies_to(self, provider: ProviderName) -> bool:
        return provider in self.limits

    async def consume(self, user_id: str, provider: ProviderName) -> None:
        """Take one unit of today's allowance, or raise PlatformQuotaExceeded."""
        limit = self.limits[provider]
        now = datetime.now(UTC)
        served = limit > 0 and await run_in_db_thread(
            self._take, user_id, provider, now.date(), limit
        )
        if not served:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            raise PlatformQuotaExceeded(
                f"The platform {provider.value} key's allowance of {limit} requests per day "
                f"for this user is spent; store your own key with PUT /v1/keys/{provider.value} "
                "or retry tomorrow (UTC).",
                provider=provider.value,
                retry_after=max(1, int((midnight - now).total_seconds()) + 1),
            )

    def _take(self, user_id: str, provider: ProviderName, day: date, limit: int) -> bool:
        table = platform_quota_usage
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        statement = (
            insert(table)
            .values(user_id=user_id, provider=provider.value, day=day, requests=1)
            .on_conflict_do_update(
                index_elements=["user_id", "provider", "day"],
                set_={"requests": table.c.requests + 1},
                where=table.c.requests < limit,
            )
            .returning(table.c.requests)
        )
        with database_errors(), self.engine.begin() as conn:
            return conn.execute(statement).scalar_one_or_none() is not None
