"""The `provider_keys` table. Migrations create it; this model only describes it."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from keyscope.app.db import metadata


class KeysBase(SQLModel):
    """Shares the naming-convention metadata with Alembic."""

    metadata = metadata


class ProviderKey(KeysBase, table=True):
    """One user's key for one provider, encrypted (see app.security.envelope)."""

    __tablename__ = "provider_keys"
    __table_args__ = (UniqueConstraint("user_id", "provider"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=255, nullable=False)
    provider: str = Field(max_length=32, nullable=False)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=64, nullable=False, index=True)
    format_version: int = Field(nullable=False)
    last4: str = Field(max_length=4, nullable=False)
    fingerprint: str = Field(max_length=32, nullable=False)
    status: str = Field(default="active", max_length=16, nullable=False)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


provider_keys = ProviderKey.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation


class KeyRevision(KeysBase, table=True):
    """The last change to one user's keys, as a database-wide increasing number.

    Written in the same transaction as every key write on SQLite, where peers sharing the file
    have no NOTIFY: a process that sees the file changed reads the rows above the last revision
    it applied and evicts those users (app/keys/coherence.py). PostgreSQL peers learn of writes
    by LISTEN/NOTIFY and leave the table empty.
    """

    __tablename__ = "key_revisions"

    user_id: str = Field(max_length=255, primary_key=True)
    revision: int = Field(nullable=False, index=True)


key_revisions = KeyRevision.__table__  # type: ignore[attr-defined]  # as provider_keys above


# The lifecycle tables are plain Core tables: nothing maps them to objects, every query is one
# statement in the store, events log, usage flusher or quota.

key_events = Table(
    "key_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("fingerprint", String(32), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_key_events_user_id_id", "user_id", "id"),
)
"""Append-only audit trail: who stored, replaced, removed or used which key (by fingerprint)."""

key_usage_daily = Table(
    "key_usage_daily",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("provider", String(32), primary_key=True),
    Column("origin", String(16), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("requests", BigInteger, nullable=False),
)
"""Requests per (user, provider, key origin, UTC day), flushed in batches off the hot path."""

platform_quota_usage = Table(
    "platform_quota_usage",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("provider", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("requests", BigInteger, nullable=False),
)
"""Platform-key requests per (user, provider, UTC day): counted synchronously, one upsert each."""
