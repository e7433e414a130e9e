"""Where a request's key may come from: the caller's own (`KeyOrigin.USER`) or the operator's
(`KeyOrigin.PLATFORM`), and `KeyPolicy`, which says for which providers the latter may stand in.

The rules themselves (own key first, platform key only where allowed, refused keys never
replaced) are applied by `UserKeys` in app/keys/user_keys.py; README "Key policy" states them.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from keyscope.providers import ProviderName


class KeyOrigin(StrEnum):
    USER = "user"
    PLATFORM = "platform"


@dataclass(frozen=True)
class KeyPolicy:
    """Which platform keys may stand in for a user's missing key."""

    platform_keys: Mapping[ProviderName, str]
    fallback: frozenset[ProviderName]

    def platform_key(self, provider: ProviderName) -> str | None:
        return self.platform_keys.get(provider) if provider in self.fallback else None

    def __repr__(self) -> str:
        return f"KeyPolicy(fallback={sorted(self.fallback)})"
