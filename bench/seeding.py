"""1,000 users with their own keys, stored through keyscope's real `KeyStore.put`.

The seed design's Fernet rows go into its own table of the same SQLite database. Tokens are
minted with `app.security.tokens.mint_token` and the bench's JWT secret.
"""

import asyncio
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dependency_injector import providers as di
from pydantic import SecretStr
from sqlmodel import Session, SQLModel, create_engine

from bench.apps.seed_schema import SeedApiKey, fernet
from bench.environment import JWT_SECRET, MASTER_KEYS
from bench.fingerprint import fingerprint
from keyscope.app.security.tokens import mint_token
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers import ProviderName

TOKEN_TTL_SECONDS = 3 * 3600
PUTS_IN_FLIGHT = 16


@dataclass(frozen=True)
class BenchUser:
    user_id: str
    token: str
    gemini_key: str
    exa_key: str
    copilotkit_key: str

    @property
    def gemini_fp(self) -> str:
        return fingerprint(self.gemini_key)

    @property
    def copilotkit_fp(self) -> str:
        return fingerprint(self.copilotkit_key)


def make_users(count: int) -> list[BenchUser]:
    return [
        BenchUser(
            user_id=f"bench-user-{n:04d}",
            token=mint_token(JWT_SECRET, f"bench-user-{n:04d}", ttl_seconds=TOKEN_TTL_SECONDS),
            gemini_key=f"AIza-user{n:04d}-{secrets.token_urlsafe(24)}",
            exa_key=f"exa-user{n:04d}-{secrets.token_urlsafe(24)}",
            copilotkit_key=f"ck_pub_user{n:04d}-{secrets.token_urlsafe(24)}",
        )
        for n in range(count)
    ]


def seed_keyscope(database_url: str, users: list[BenchUser]) -> None:
    """Store every user's Gemini, Exa and CopilotKit keys through the app's own KeyStore."""
    values: dict[str, Any] = {
        "deploy_env": "production",
        "database_url": database_url,
        "master_keys": SecretStr(MASTER_KEYS),
        "jwt_secret": SecretStr(JWT_SECRET),
        "key_cache_ttl": 0,
    }
    container = Container(settings=di.Object(Settings(_env_file=None, **values)))
    store = container.key_store()

    async def put_all() -> None:
        gate = asyncio.Semaphore(PUTS_IN_FLIGHT)

        async def put(user: BenchUser, provider: ProviderName, key: str) -> None:
            async with gate:
                await store.put(user.user_id, provider, key)

        await asyncio.gather(
            *(put(u, ProviderName.GEMINI, u.gemini_key) for u in users),
            *(put(u, ProviderName.EXA, u.exa_key) for u in users),
            *(put(u, ProviderName.COPILOTKIT, u.copilotkit_key) for u in users),
        )

    try:
        asyncio.run(put_all())
    finally:
        container.engine().dispose()


def seed_seed_design(database_url: str, users: list[BenchUser]) -> None:
    """The baseline's Fernet rows, one per (user, provider), in its own table."""
    engine = create_engine(database_url)
    try:
        SQLModel.metadata.create_all(engine, tables=[SeedApiKey.__table__])  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
        with Session(engine) as session:
            for user in users:
                for provider, key in (("gemini", user.gemini_key), ("exa", user.exa_key)):
                    session.add(
                        SeedApiKey(
                            user_id=user.user_id,
                            provider=provider,
                            encrypted_key=fernet.encrypt(key.encode()),
                        )
                    )
            session.commit()
    finally:
        engine.dispose()


def write_users(directory: Path, users: list[BenchUser]) -> tuple[Path, Path]:
    """tokens.txt (one per line, for the load generators) and users.json (for the check)."""
    tokens = directory / "tokens.txt"
    tokens.write_text("".join(f"{u.token}\n" for u in users))
    listing = directory / "users.json"
    listing.write_text(json.dumps([asdict(u) for u in users]))
    return tokens, listing
