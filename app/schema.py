"""Is the database at keyscope's migration head? Asked at start-up and by `/readyz` only.

Requests never ask: a query that meets a missing table is translated to the same
`schema-not-migrated` problem on the error path (app/db.py), so the hot path pays nothing.
"""

import logging
from dataclasses import dataclass

from alembic.migration import MigrationContext
from sqlalchemy import Engine

from keyscope.app.db import database_errors
from keyscope.app.migrate import VERSION_TABLE, all_revisions, head_revisions

log = logging.getLogger("keyscope")


@dataclass(frozen=True, slots=True)
class SchemaState:
    """The revisions recorded in the database against the heads this code ships."""

    current: frozenset[str]
    heads: frozenset[str]

    @property
    def migrated(self) -> bool:
        """At head, or ahead of it (a newer keyscope migrated during a rolling deploy)."""
        if self.current == self.heads:
            return True
        return bool(self.current) and not self.current <= all_revisions()

    def describe(self) -> str:
        if not self.current:
            return "keyscope's schema is not migrated: run `keyscope migrate`"
        if self.migrated:
            return "keyscope's schema is newer than this code (a later release migrated it)"
        return "keyscope's schema is behind its migrations: run `keyscope migrate`"


def read_schema_state(engine: Engine) -> SchemaState:
    """One short read of keyscope's version table (raises DatabaseUnavailable when down)."""
    with database_errors(), engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        current = frozenset(context.get_current_heads())
    return SchemaState(current=current, heads=head_revisions())


def report_schema_at_startup(engine: Engine) -> SchemaState | None:
    """Log loudly when the schema is not at head; the app still starts (and `/readyz` says
    503) so an operator can migrate without a crash loop. None when the database is down."""
    try:
        state = read_schema_state(engine)
    except Exception as exc:  # the database may be down at start; /readyz reports that
        log.warning("start-up schema check skipped: %s", type(exc).__name__)
        return None
    if not state.migrated:
        log.error("%s", state.describe())
    elif state.current != state.heads:
        log.warning("%s", state.describe())
    return state
