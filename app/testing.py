"""Test support for apps that use keyscope: fixed keys without a database.

    container.user_keys.override(providers.Object(StaticUserKeys("alice", {GEMINI: "k"})))

drops the token/database path entirely (style 1). To keep once-per-request loading, override
with another `RequestScoped` instead (style 2; see README "Testing with keyscope").
"""

from collections.abc import Mapping

from keyscope.app.user_keys import KeyOrigin, KeyPolicy, ResolvedKey, Secret, UserKeys
from keyscope.providers import ProviderName


class StaticUserKeys(UserKeys):
    """A UserKeys holding plaintext keys given directly (tests only)."""

    def __init__(self, user_id: str, secrets: Mapping[ProviderName, str]) -> None:
        super().__init__(user_id, {}, None, KeyPolicy({}, frozenset()))  # type: ignore[arg-type]  # never decrypts
        self._static = dict(secrets)

    def get(self, provider: ProviderName) -> ResolvedKey | None:
        secret = self._static.get(provider)
        return ResolvedKey(Secret(secret), KeyOrigin.USER) if secret is not None else None
