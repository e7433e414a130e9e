"""The project's own table, `notes`, managed by its own Alembic history (migrations/)."""

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("text", String(2000), nullable=False),
)


class NoteStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, owner: str, text: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(notes).values(owner=owner, text=text))

    def of(self, owner: str) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(notes.c.text).where(notes.c.owner == owner).order_by(notes.c.id)
            )
            return [row.text for row in rows]
