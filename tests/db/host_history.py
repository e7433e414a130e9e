"""A tiny foreign Alembic history (the host application's own), written into a tmp dir.

It uses Alembic's default `alembic_version` table and, on purpose, the same short revision
id as keyscope's first revision ("0001"), the worst case for telling the two apart.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config

HOST_HEAD = "0002"

_ENV = """
from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine(context.config.attributes["url"], poolclass=pool.NullPool)
with engine.connect() as conn:
    context.configure(connection=conn, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table({table!r}, sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table({table!r})
"""


def host_config(directory: Path, url: str) -> Config:
    """The host's Alembic configuration, its scripts created under `directory` once."""
    scripts = directory / "host_migrations"
    if not scripts.exists():
        (scripts / "versions").mkdir(parents=True)
        (scripts / "env.py").write_text(_ENV)
        for revision, down, table in (("0001", None, "host_items"), ("0002", "0001", "host_notes")):
            text = _REVISION.format(revision=revision, down=down, table=table)
            (scripts / "versions" / f"{revision}_host.py").write_text(text)
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.attributes["url"] = url
    return config


def host_upgrade(directory: Path, url: str) -> None:
    command.upgrade(host_config(directory, url), "head")


def host_downgrade(directory: Path, url: str) -> None:
    command.downgrade(host_config(directory, url), "base")
