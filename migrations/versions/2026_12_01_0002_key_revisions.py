"""key_revisions: per-user change counter for peers sharing one SQLite file

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_revisions",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_key_revisions")),
    )
    op.create_index(op.f("ix_key_revisions_revision"), "key_revisions", ["revision"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_key_revisions_revision"), table_name="key_revisions")
    op.drop_table("key_revisions")
