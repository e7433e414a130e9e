"""notes

Revision ID: adopter_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "adopter_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notes")
