"""The seed design's storage: one SQLModel table of Fernet-encrypted keys (baseline only).

It lives in the same database file as keyscope's `provider_keys`, so both designs query the
same engine; keyscope never reads it.
"""

from cryptography.fernet import Fernet
from sqlmodel import Field, SQLModel

from bench.environment import FERNET_KEY

fernet = Fernet(FERNET_KEY)


class SeedApiKey(SQLModel, table=True):
    __tablename__ = "bench_seed_user_api_keys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True)
    provider: str
    encrypted_key: bytes
