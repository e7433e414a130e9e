"""Many users at once: the overlay gives each read its own user's key; the seed design doesn't."""

import asyncio
import os
import sys
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest

from keyscope.providers import ProviderName
from tests.legacy.seed_middleware import SeedApiKeyInjection
from tests.support.legacy import (
    OPERATOR_KEYS,
    USER_KEY_PREFIX,
    FakeKeys,
    c_environ,
    in_request,
    keys_for,
    python_environ_values,
)

pytestmark = pytest.mark.anyio

USERS = 50
FLOWS_PER_USER = 20
PROVIDER_OF = {"GEMINI_API_KEY": ProviderName.GEMINI, "EXA_API_KEY": ProviderName.EXA}

Reads = list[tuple[str, str | None]]  # (variable, value seen)


def user_ids() -> list[str]:
    return [f"u{n:02d}" for n in range(USERS)]


def keys_of(user: str) -> FakeKeys:
    # Every fifth user has no Exa key: they must see it absent, never someone else's.
    missing = (ProviderName.EXA,) if int(user[1:]) % 5 == 0 else ()
    return keys_for(user, without=missing)


async def legacy_handler() -> Reads:
    """Legacy code: env reads separated by awaits and thread hops, as a real handler does."""
    reads: Reads = [("GEMINI_API_KEY", os.getenv("GEMINI_API_KEY"))]
    await asyncio.sleep(0)
    reads.append(("EXA_API_KEY", os.environ.get("EXA_API_KEY")))
    reads.append(("GEMINI_API_KEY", await asyncio.to_thread(os.getenv, "GEMINI_API_KEY")))
    await asyncio.sleep(0)
    exa = await anyio.to_thread.run_sync(lambda: os.environ.get("EXA_API_KEY"))
    reads.append(("EXA_API_KEY", exa))
    reads.append(("GEMINI_API_KEY", dict(os.environ).get("GEMINI_API_KEY")))
    return reads


def wrong_reads(keys: FakeKeys, reads: Reads) -> list[str]:
    """Which of `reads` did not see exactly `keys`' own value (a description, no values)."""
    return [
        f"{keys.user}:{name}" for name, seen in reads if seen != keys.secret_for(PROVIDER_OF[name])
    ]


async def overlay_request(keys: FakeKeys) -> Reads:
    with in_request(keys):
        flows = [asyncio.create_task(legacy_handler()) for _ in range(FLOWS_PER_USER)]
        return [read for flow in await asyncio.gather(*flows) for read in flow]


@pytest.fixture
def seed_cleanup(env_guard: None) -> Iterator[None]:
    """The seed writes the real environment: put the managed names back before the guard looks."""
    saved = {name: os.environ.get(name) for name in PROVIDER_OF}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.mark.usefixtures("installed")
async def test_overlay_gives_every_read_its_own_users_key() -> None:
    """50 users x 20 interleaved tasks with thread hops: 0 wrong keys, 0 operator keys."""
    users = [keys_of(user) for user in user_ids()]
    results = await asyncio.gather(*(overlay_request(keys) for keys in users))

    reads = [read for per_user in results for read in per_user]
    assert len(reads) == USERS * FLOWS_PER_USER * 5
    assert [w for keys, r in zip(users, results, strict=True) for w in wrong_reads(keys, r)] == []
    assert not {seen for _, seen in reads} & set(OPERATOR_KEYS.values())
    assert None in {seen for _, seen in reads}  # the Exa-less users really read "absent"

    # Afterwards no user key is anywhere a child process or C code could find it.
    assert not any(USER_KEY_PREFIX in value for value in python_environ_values())
    assert not any(USER_KEY_PREFIX in entry for entry in c_environ())
    child = await anyio.run_process(  # default env: what the process itself holds
        [sys.executable, "-c", "import os; print(sorted(os.environ.items()))"]
    )
    assert USER_KEY_PREFIX.encode() not in child.stdout


@pytest.mark.usefixtures("seed_cleanup")
async def test_seed_middleware_leaks_under_interleaved_awaits() -> None:
    """The seed's set/restore middleware serves other users' keys and leaves one behind."""
    users = {user: keys_for(user) for user in user_ids()}
    seed = SeedApiKeyInjection(
        lambda user: {p.value: key for p, key in users[user].keys.items()}, deploy_env="production"
    )
    results = await asyncio.gather(*(seed(user, legacy_handler) for user in users))

    pairs = zip(users.values(), results, strict=True)
    wrong = [w for keys, reads in pairs for w in wrong_reads(keys, reads)]
    assert len(wrong) > len(results)  # far more than one wrong read per request
    leftover = {name: os.environ.get(name) for name in PROVIDER_OF}
    assert any((value or "").startswith(USER_KEY_PREFIX) for value in leftover.values())
