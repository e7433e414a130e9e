"""Validation on save: one minimal authenticated call to the provider, before a key is stored.

* Gemini: list models (one page of one), the cheap authenticated call.
* Exa: a one-result search. Exa has no free authenticated endpoint left (its listing of
  research tasks was retired with the Research API), so this is the cheapest call it offers.
* CopilotKit: the key must be a publishable key (`ck_pub_`); Copilot Cloud documents no call
  that checks one, so a well-formed key is stored as `unverified`, not `active`.

A definite rejection (the provider's 401/403, or Google's API_KEY_* reasons) raises
`KeyRejected`; anything that leaves the answer open (timeout, unreachable, 5xx, rate limit)
returns `unverified`: a provider outage must never stop a user from saving a key. Google's
key formats are changing, so no prefix rule is applied to Gemini keys.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from keyscope.app.keys.records import KeyStatus
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.errors import KeyRejected, ProviderError
from keyscope.providers.exa import ExaClient
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp

log = logging.getLogger("keyscope.keys")

COPILOTKIT_PUBLIC_PREFIX = "ck_pub_"


@dataclass(frozen=True)
class Validation:
    """The outcome of a check that did not reject the key."""

    status: KeyStatus  # ACTIVE (the provider accepted it) or UNVERIFIED
    reason: str | None = None  # why it is unverified, for the response; never key material

    @property
    def outcome(self) -> str:
        return "accepted" if self.status is KeyStatus.ACTIVE else "unverified"


OutcomeHook = Callable[[ProviderName, str], None]


class KeyValidator:
    """Asks each provider whether a key works, through the same clients the routes use."""

    def __init__(
        self,
        http: SharedHttp,
        *,
        gemini_base_url: str,
        exa_base_url: str,
        copilotkit_runtime_url: str,
        timeout: float,
        on_outcome: OutcomeHook | None = None,
    ) -> None:
        self._http = http
        self._gemini_base_url = gemini_base_url
        self._exa_base_url = exa_base_url
        self._copilotkit_runtime_url = copilotkit_runtime_url
        self._timeout = timeout
        self._on_outcome = on_outcome

    async def validate(self, provider: ProviderName, api_key: str) -> Validation:
        """`Validation` unless the provider definitely rejects the key (`KeyRejected`)."""
        try:
            result = await self._check(provider, api_key)
        except KeyRejected:
            self._note(provider, "rejected")
            raise
        self._note(provider, result.outcome)
        return result

    async def _check(self, provider: ProviderName, api_key: str) -> Validation:
        if provider is ProviderName.COPILOTKIT:
            if not api_key.startswith(COPILOTKIT_PUBLIC_PREFIX):
                raise KeyRejected(
                    provider, f"a Copilot Cloud public key starts with {COPILOTKIT_PUBLIC_PREFIX}"
                )
            CopilotKitClient(api_key, runtime_url=self._copilotkit_runtime_url, http=self._http)
            return Validation(KeyStatus.UNVERIFIED, "Copilot Cloud offers no key-check call")
        call = self._call_for(provider, api_key)
        try:
            with anyio.fail_after(self._timeout):
                await call()
        except TimeoutError:
            return Validation(KeyStatus.UNVERIFIED, f"{provider.value} did not answer in time")
        except KeyRejected:
            raise
        except ProviderError as exc:
            log.info("key check inconclusive provider=%s: %s", provider.value, exc.title)
            return Validation(KeyStatus.UNVERIFIED, f"{provider.value}: {exc.title.lower()}")
        return Validation(KeyStatus.ACTIVE)

    def _call_for(self, provider: ProviderName, api_key: str) -> Callable[[], Awaitable[None]]:
        if provider is ProviderName.GEMINI:
            return GeminiClient(
                api_key, base_url=self._gemini_base_url, http=self._http
            ).validate_key
        return ExaClient(api_key, base_url=self._exa_base_url, http=self._http).validate_key

    def _note(self, provider: ProviderName, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(provider, outcome)
