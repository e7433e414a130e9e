"""The google.generativeai.configure() shim, against a stand-in for the deprecated SDK.

`google-generativeai` is not installed (and must not be): `StandInSDK` reproduces the part
of its `google/generativeai/client.py` that matters here. One process-global
`_client_manager` holds the configuration and caches clients; module-level `configure()`
and `get_default_*_client()` look that global up at call time; a manager without
configuration configures itself from GEMINI_API_KEY, then GOOGLE_API_KEY.
"""

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from keyscope.app.legacy import overlay
from keyscope.app.legacy.overlay import helpers
from keyscope.providers import ProviderName
from tests.support.legacy import in_request, keys_for, user_key

pytestmark = pytest.mark.anyio


@dataclass
class FakeServiceClient:
    service: str
    api_key: str | None


@dataclass
class _ClientManager:
    client_config: dict[str, Any] = field(default_factory=dict)
    clients: dict[str, FakeServiceClient] = field(default_factory=dict)

    def configure(self, *, api_key: str | None = None) -> None:
        if not api_key:
            api_key = os.getenv("GEMINI_API_KEY")
        if not api_key:
            api_key = os.getenv("GOOGLE_API_KEY")
        self.client_config = {"api_key": api_key}
        self.clients = {}

    def get_default_client(self, name: str) -> FakeServiceClient:
        client = self.clients.get(name)
        if client is None:
            if not self.client_config:
                sdk_client_module().configure()
            client = self.clients[name] = FakeServiceClient(name, self.client_config["api_key"])
        return client


def sdk_client_module() -> Any:
    return sys.modules["google.generativeai.client"]


def build_stand_in() -> tuple[ModuleType, ModuleType]:
    """`google.generativeai` and `google.generativeai.client`, shaped like the real SDK."""
    client = ModuleType("google.generativeai.client")
    package = ModuleType("google.generativeai")

    def configure(*, api_key: str | None = None) -> None:
        client._client_manager.configure(api_key=api_key)  # the global, looked up per call

    def get_default_generative_client() -> FakeServiceClient:
        return client._client_manager.get_default_client("generative")  # type: ignore[no-any-return]

    client._ClientManager = _ClientManager  # type: ignore[attr-defined]
    client._client_manager = _ClientManager()  # type: ignore[attr-defined]
    client.configure = configure  # type: ignore[attr-defined]
    client.get_default_generative_client = get_default_generative_client  # type: ignore[attr-defined]
    package.configure = configure  # type: ignore[attr-defined]
    package.client = client  # type: ignore[attr-defined]
    return package, client


@pytest.fixture
def stand_in_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in installed in sys.modules (removed afterwards), patched or not by the test."""
    package, client = build_stand_in()
    monkeypatch.setitem(sys.modules, "google.generativeai", package)
    monkeypatch.setitem(sys.modules, "google.generativeai.client", client)
    yield package
    helpers.unpatch_genai_configure()


async def configured_request(genai: Any, user: str) -> str | None:
    """Legacy code: configure the process-wide SDK with this user's key, then use it."""
    with in_request(keys_for(user)):
        genai.configure(api_key=user_key(user, ProviderName.GEMINI))
        await asyncio.sleep(0)
        return genai.client.get_default_generative_client().api_key  # type: ignore[no-any-return]


async def wrong_keys(genai: Any) -> int:
    users = [f"g{n}" for n in range(20)]
    seen = await asyncio.gather(*(configured_request(genai, user) for user in users))
    pairs = zip(users, seen, strict=True)
    return sum(key != user_key(user, ProviderName.GEMINI) for user, key in pairs)


@pytest.mark.usefixtures("installed")
async def test_configure_is_per_request_once_patched(stand_in_sdk: Any) -> None:
    """20 concurrent users each configure their key: shared without the shim, isolated with it."""
    assert await wrong_keys(stand_in_sdk) > 0  # the stand-in really is process-global
    assert helpers.patch_genai_configure() is True
    assert await wrong_keys(stand_in_sdk) == 0


@pytest.mark.usefixtures("installed")
async def test_requests_never_inherit_the_start_up_configuration(stand_in_sdk: Any) -> None:
    """A request that doesn't configure gets its user's key (via the overlay), not start-up's."""
    stand_in_sdk.configure(api_key="operator-configured-at-start-up")
    assert helpers.patch_genai_configure() is True
    with in_request(keys_for("alice")):
        client = await asyncio.to_thread(stand_in_sdk.client.get_default_generative_client)
        assert client.api_key == user_key("alice", ProviderName.GEMINI)
    with in_request(keys_for("bob", without=(ProviderName.GEMINI,))):
        assert stand_in_sdk.client.get_default_generative_client().api_key is None
    outside = stand_in_sdk.client.get_default_generative_client()
    assert outside.api_key == "operator-configured-at-start-up"


@pytest.mark.usefixtures("installed")
async def test_configure_in_a_worker_thread_applies_to_the_whole_request(
    stand_in_sdk: Any,
) -> None:
    """configure() run via to_thread is seen by the request's event-loop code afterwards."""
    helpers.patch_genai_configure()
    with in_request(keys_for("alice")):
        await asyncio.to_thread(stand_in_sdk.configure, api_key="alice-configured-in-thread")
        assert stand_in_sdk.client.get_default_generative_client().api_key == (
            "alice-configured-in-thread"
        )


@pytest.mark.usefixtures("installed")
def test_unpatch_restores_the_process_manager(stand_in_sdk: Any) -> None:
    """unpatch_genai_configure() puts the SDK's own manager back."""
    original = stand_in_sdk.client._client_manager
    helpers.patch_genai_configure()
    assert stand_in_sdk.client._client_manager is not original
    assert helpers.unpatch_genai_configure() is True
    assert stand_in_sdk.client._client_manager is original


@pytest.mark.usefixtures("installed")
def test_patch_is_a_no_op_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without google.generativeai importable there is nothing to patch: False, no error."""
    monkeypatch.delitem(sys.modules, "google.generativeai", raising=False)
    monkeypatch.delitem(sys.modules, "google.generativeai.client", raising=False)
    assert helpers.patch_genai_configure() is False


def test_patch_requires_the_overlay(env_guard: None, stand_in_sdk: Any) -> None:
    """Patching without the overlay raises: it could not tell requests apart."""
    assert not overlay.is_installed()
    with pytest.raises(overlay.OverlayError, match="install the legacy env overlay"):
        helpers.patch_genai_configure()
