"""Errors the provider adapters raise; vendor exceptions never cross this boundary.

Each carries the provider's name and an HTTP status the service maps it to, and a message
that never contains a key: adapters build messages from status codes and names only.
"""

from keyscope.providers import ProviderName


class ProviderError(Exception):
    """An upstream call failed; `status` is what the service should answer with."""

    status: int = 502
    title: str = "Upstream provider error"

    def __init__(self, provider: ProviderName, detail: str) -> None:
        super().__init__(f"{provider.value}: {detail}")
        self.provider = provider
        self.detail = detail


class KeyRejected(ProviderError):
    """The provider refused the caller's key (401/403 upstream)."""

    status = 422
    title = "Provider rejected the API key"


class RateLimited(ProviderError):
    """The provider throttled the caller (429 upstream); `retry_after` in seconds when given."""

    status = 429
    title = "Provider rate limit"

    def __init__(self, provider: ProviderName, detail: str, retry_after: int | None = None) -> None:
        super().__init__(provider, detail)
        self.retry_after = retry_after


class BadUpstreamRequest(ProviderError):
    """The provider refused the request itself (400/404 upstream, e.g. an unknown model)."""

    status = 400
    title = "Provider refused the request"


class Unavailable(ProviderError):
    """The provider could not be reached, or answered with a server error."""

    status = 502
    title = "Provider unavailable"


class UpstreamTimeout(ProviderError):
    """The provider did not answer in time."""

    status = 504
    title = "Provider timed out"


def error_for_status(
    provider: ProviderName,
    status: int,
    *,
    retry_after: int | None = None,
    upstream_detail: str | None = None,
) -> ProviderError:
    """Map an upstream HTTP status to our error family.

    `upstream_detail` must already be free of secrets (callers redact it); it is appended so
    an operator can tell "unknown model" from "malformed body" without a debugger.
    """
    suffix = f": {upstream_detail}" if upstream_detail else ""
    if status in (401, 403):
        return KeyRejected(provider, f"upstream answered {status}{suffix}")
    if status == 429:
        return RateLimited(provider, f"upstream answered 429{suffix}", retry_after)
    if status in (408, 504):
        return UpstreamTimeout(provider, f"upstream answered {status}{suffix}")
    if 400 <= status < 500:
        return BadUpstreamRequest(provider, f"upstream answered {status}{suffix}")
    return Unavailable(provider, f"upstream answered {status}{suffix}")
