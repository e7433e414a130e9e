"""The request path is typed end to end: provider, FastAPI dependency and alias agree."""

import subprocess
import sys
from pathlib import Path
from typing import Annotated, assert_type, get_args, get_origin

import pytest
from fastapi import Request
from fastapi.params import Depends

from keyscope.app import deps
from keyscope.app.awaitables import MaybeAwaitable
from keyscope.app.keys.store import KeyStore
from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.security.tokens import Principal
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.gemini import GeminiClient

REPO = Path(__file__).resolve().parents[2]

# alias -> (the type it promises the endpoint, the dependency it resolves with)
ALIASES = {
    "PrincipalDep": (Principal, deps.principal),
    "UserKeysDep": (UserKeys, deps.user_keys),
    "GeminiDep": (GeminiClient, deps.gemini_client),
    "ExaDep": (ExaClient, deps.exa_client),
    "CopilotKitDep": (CopilotKitClient, deps.copilotkit_client),
    "KeyStoreDep": (KeyStore, deps.key_store),
    "SettingsDep": (Settings, deps.settings),
}


async def _static_checks(container: Container, request: Request) -> None:
    """Never run: mypy checks these lines (`make lint`) and fails on any mismatch."""
    assert_type(container.gemini_client(), MaybeAwaitable[GeminiClient])
    assert_type(container.user_keys(), MaybeAwaitable[UserKeys])
    assert_type(await deps.principal(request), Principal)
    assert_type(await deps.user_keys(request), UserKeys)
    assert_type(await deps.gemini_client(request), GeminiClient)
    assert_type(await deps.exa_client(request), ExaClient)
    assert_type(await deps.copilotkit_client(request), CopilotKitClient)
    assert_type(await deps.key_store(request), KeyStore)
    assert_type(await deps.settings(request), Settings)


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_each_alias_promises_what_its_dependency_returns(name: str) -> None:
    """Each alias is `Annotated[<type>, Depends(<the dependency mypy checked above>)]`."""
    alias = getattr(deps, name)
    expected_type, dependency = ALIASES[name]
    assert get_origin(alias) is Annotated
    promised, marker = get_args(alias)
    assert promised is expected_type
    assert isinstance(marker, Depends)
    assert marker.dependency is dependency


@pytest.mark.slow
def test_mypy_reveals_the_client_type_of_each_dependency(tmp_path: Path) -> None:
    """`reveal_type` through mypy: each dependency of app/deps.py yields its client type."""
    names = {
        "principal": "Principal",
        "user_keys": "UserKeys",
        "gemini_client": "GeminiClient",
        "exa_client": "ExaClient",
        "copilotkit_client": "CopilotKitClient",
    }
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from fastapi import Request\nfrom keyscope.app import deps\n\n"
        "async def probe(request: Request) -> None:\n"
        + "".join(f"    reveal_type(await deps.{n}(request))\n" for n in names)
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(probe)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    revealed = [line for line in done.stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == len(names), done.stdout + done.stderr
    for line, type_name in zip(revealed, names.values(), strict=True):
        assert line.endswith(f'.{type_name}"'), line
    assert "Any" not in "\n".join(revealed)
