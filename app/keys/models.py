"""The `provider_keys` table. Migrations create it; this model only describes it."""

from datetime import datetime

from sqlalchemy import Column, DateTime, LargeBinary, UniqueConstraint
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
