"""Thread and process hops: which carry the request (and see its key), which see nothing."""

import asyncio
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import pytest

from keyscope.app.legacy.overlay import helpers
from keyscope.providers import ProviderName
from tests.support.legacy import (
    OPERATOR_KEYS,
    USER_KEY_PREFIX,
    c_getenv,
    in_request,
    keys_for,
    user_key,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("installed")]

ALICE_GEMINI = user_key("alice", ProviderName.GEMINI)
PRINT_ENV = "import os, sys; sys.stdout.write(repr(sorted(os.environ.items())))"


def gemini_key() -> str | None:
    return os.getenv("GEMINI_API_KEY")


def read_in_raw_thread() -> str | None:
    seen: list[str | None] = []
    thread = threading.Thread(target=lambda: seen.append(gemini_key()))
    thread.start()
    thread.join()
    return seen[0]


def read_in_context_thread() -> str | None:
    seen: list[str | None] = []
    helpers.start_thread(lambda: seen.append(gemini_key())).join()
    return seen[0]


def child_environment(env: dict[str, str] | None = None) -> str:
    done = subprocess.run(  # our own interpreter, fixed arguments
        [sys.executable, "-c", PRINT_ENV], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


async def test_hops_that_copy_the_context_see_the_users_key() -> None:
    """asyncio.to_thread, anyio's run_sync and create_task run as the same request."""
    with in_request(keys_for("alice")):
        assert await asyncio.to_thread(gemini_key) == ALICE_GEMINI
        assert await anyio.to_thread.run_sync(gemini_key) == ALICE_GEMINI
        assert await asyncio.create_task(asyncio.to_thread(gemini_key)) == ALICE_GEMINI


async def test_hops_that_drop_the_context_see_nothing() -> None:
    """run_in_executor, ThreadPoolExecutor.submit and Thread see neither user nor operator key."""
    with in_request(keys_for("alice")):
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, gemini_key) is None
        with ThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(gemini_key).result() is None
        assert read_in_raw_thread() is None


async def test_helpers_carry_the_context_across_hops() -> None:
    """The context-carrying helpers give the submitting request's key, per submitter."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as plain, helpers.ContextThreadPoolExecutor(2) as pool:
        for user in ("alice", "bob"):
            with in_request(keys_for(user)):
                expected = user_key(user, ProviderName.GEMINI)
                assert pool.submit(gemini_key).result() == expected
                assert list(pool.map(lambda _: gemini_key(), range(3))) == [expected] * 3
                assert await helpers.run_in_executor(loop, plain, gemini_key) == expected
                assert read_in_context_thread() == expected


def test_c_level_and_bytes_environment_hold_no_key() -> None:
    """C getenv and os.environb inside a request see neither the user's nor the operator's key."""
    with in_request(keys_for("alice")):
        assert c_getenv("GEMINI_API_KEY") is None
        assert os.environb.get(b"GEMINI_API_KEY") is None
        assert not any(v.startswith(USER_KEY_PREFIX.encode()) for v in os.environb.values())


def test_child_process_inherits_no_key_unless_given_subprocess_env() -> None:
    """A child started with the default env gets no key; with subprocess_env() the user's."""
    with in_request(keys_for("alice", without=(ProviderName.EXA,))):
        inherited = child_environment()
        explicit = child_environment(helpers.subprocess_env({"EXTRA": "1"}))
    assert USER_KEY_PREFIX not in inherited
    assert not any(value in inherited for value in OPERATOR_KEYS.values())
    assert ALICE_GEMINI in explicit
    assert "'EXTRA', '1'" in explicit
    assert "EXA_API_KEY" not in explicit  # she has none; not the operator's either
    assert not any(value in explicit for value in OPERATOR_KEYS.values())


def test_subprocess_env_outside_a_request_has_no_managed_names() -> None:
    """Outside a request (production mode) subprocess_env() carries no provider key at all."""
    env = helpers.subprocess_env()
    assert not set(OPERATOR_KEYS) & set(env)
    assert env["PATH"] == os.environ["PATH"]
