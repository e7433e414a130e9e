"""A hypothesis state machine over the HTTP API: users store, replace and delete keys and call
providers; the model says whose key must reach the fake upstream, and nothing else may."""

import itertools
from collections.abc import Callable

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from keyscope.app.live_server import live_server
from keyscope.app.main import create_app
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams

Auth = Callable[[str], dict[str, str]]
USERS = ("alice", "bob", "carol")
PROVIDERS = ("gemini", "exa", "copilotkit")
CALLS = {
    "gemini": ("/v1/gemini/generate", {"prompt": "hello"}),
    "exa": ("/v1/exa/search", {"query": "hello"}),
}


def test_key_isolation_state_machine(
    container: Container, upstreams: FakeUpstreams, auth: Auth
) -> None:
    """No loss, no duplicate, never another user's or a deleted key, no plaintext returned."""
    counter = itertools.count()
    with live_server(create_app(container)) as base_url, httpx.Client(base_url=base_url) as http:
        tokens = {user: auth(user) for user in USERS}

        class KeysMachine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.model: dict[tuple[str, str], str] = {}
                self.ever: set[str] = set()
                for user in USERS:  # the database outlives one run: start from empty
                    for provider in PROVIDERS:
                        http.delete(f"/v1/keys/{provider}", headers=tokens[user])

            def check_no_plaintext(self, response: httpx.Response, allowed: str = "") -> None:
                for key in self.ever - {allowed}:
                    assert key not in response.text

            @rule(user=st.sampled_from(USERS), provider=st.sampled_from(PROVIDERS))
            def put(self, user: str, provider: str) -> None:
                prefix = "ck_pub_" if provider == "copilotkit" else ""
                key = f"{prefix}k{next(counter)}-{user}-{provider}-0123456789"
                response = http.put(
                    f"/v1/keys/{provider}", json={"api_key": key}, headers=tokens[user]
                )
                assert response.status_code == 200, response.text
                assert response.json()["last4"] == key[-4:]
                self.check_no_plaintext(response)
                self.model[(user, provider)] = key
                self.ever.add(key)

            @rule(user=st.sampled_from(USERS), provider=st.sampled_from(PROVIDERS))
            def delete(self, user: str, provider: str) -> None:
                response = http.delete(f"/v1/keys/{provider}", headers=tokens[user])
                expected = 204 if (user, provider) in self.model else 404
                assert response.status_code == expected, response.text
                self.model.pop((user, provider), None)

            @rule(user=st.sampled_from(USERS), provider=st.sampled_from(tuple(CALLS)))
            def call(self, user: str, provider: str) -> None:
                upstreams.clear()
                path, body = CALLS[provider]
                response = http.post(path, json=body, headers=tokens[user])
                self.check_no_plaintext(response)
                seen = [r.key for r in upstreams.records(ProviderName(provider))]
                key = self.model.get((user, provider))
                if key is None:
                    assert response.status_code == 409, response.text
                    assert seen == []
                else:
                    assert response.status_code == 200, response.text
                    assert seen == [key]

            @rule(user=st.sampled_from(USERS))
            def copilotkit_config(self, user: str) -> None:
                response = http.get("/v1/copilotkit/config", headers=tokens[user])
                key = self.model.get((user, "copilotkit"))
                if key is None:
                    assert response.status_code == 409, response.text
                else:
                    assert response.json()["public_api_key"] == key
                self.check_no_plaintext(response, allowed=key or "")

            @invariant()
            def listing_matches(self) -> None:
                for user in USERS:
                    response = http.get("/v1/keys", headers=tokens[user])
                    listed = [(k["provider"], k["last4"]) for k in response.json()["keys"]]
                    expected = [
                        (p, self.model[(user, p)][-4:])
                        for p in PROVIDERS
                        if (user, p) in self.model
                    ]
                    assert listed == expected  # no loss, no duplicate, nobody else's
                    self.check_no_plaintext(response)

        run_state_machine_as_test(
            KeysMachine,
            settings=settings(
                max_examples=6,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
