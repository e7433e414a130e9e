"""key lifecycle: expiry and last use on provider_keys; audit events, daily usage, platform quota

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: a plain ADD COLUMN on both engines, no table rebuild.
    op.add_column("provider_keys", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("provider_keys", sa.Column("last_used_at", sa.DateTime(timezone=True)))
    op.create_table(
        "key_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_events")),
    )
    op.create_index("ix_key_events_user_id_id", "key_events", ["user_id", "id"], unique=False)
    op.create_table(
        "key_usage_daily",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "user_id", "provider", "origin", "day", name=op.f("pk_key_usage_daily")
        ),
    )
    op.create_table(
        "platform_quota_usage",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "provider", "day", name=op.f("pk_platform_quota_usage")),
    )


def downgrade() -> None:
    op.drop_table("platform_quota_usage")
    op.drop_table("key_usage_daily")
    op.drop_index("ix_key_events_user_id_id", table_name="key_events")
    op.drop_table("key_events")
    op.drop_column("provider_keys", "last_used_at")
    op.drop_column("provider_keys", "expires_at")
