"""Errors that carry their HTTP status; one handler renders them all as problem+json.

Messages are written for the caller and never contain a secret: build them from names,
ids and counts only, never from a key, a token or a ciphertext.
"""

from typing import ClassVar

from keyscope.providers import ProviderName

PROBLEM_BASE = "https://keyscope.dev/problems/"


class AppError(Exception):
    """Base of every error the service turns into a response."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers the problem needs (e.g. WWW-Authenticate)."""
        return {}

    @property
    def members(self) -> dict[str, str]:
        """Extra problem members beside type, title, status and detail (names, never secrets)."""
        return {}


class InvalidToken(AppError):
    """Missing, malformed, expired or otherwise unacceptable bearer token.

    Every cause shares one message on purpose: the reason a token failed helps an attacker
    more than a client (clients re-authenticate either way).
    """

    status = 401
    slug = "invalid-token"
    title = "Unauthorized"

    def __init__(self) -> None:
        super().__init__("A valid bearer token is required.")

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class MissingToken(InvalidToken):
    """No bearer credentials at all: the same 401, but RFC 6750 section 3.1 says a challenge
    to a request without credentials carries no error code."""

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class BodyTooLarge(AppError):
    """The request body is larger than the route accepts (checked before it is read)."""

    status = 413
    slug = "body-too-large"
    title = "Request body too large"


class UnsupportedMediaType(AppError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class InvalidKeyFormat(AppError):
    """A key that cannot be the provider's key by a documented public format (only where the
    vendor documents one: Copilot Cloud's publishable `ck_pub_` keys)."""

    status = 422
    slug = "invalid-key-format"
    title = "Invalid key format"

    def __init__(self, provider: ProviderName, detail: str) -> None:
        super().__init__(detail)
        self.provider = provider

    @property
    def members(self) -> dict[str, str]:
        return {"provider": self.provider.value}


class ExpiryInPast(AppError):
    """A key stored with an `expires_at` that is not in the future (it could never be used)."""

    status = 422
    slug = "expiry-in-past"
    title = "expires_at is in the past"


class KeyNotPublishable(AppError):
    """The stored CopilotKit key is not a publishable `ck_pub_` key, so it is never handed to
    a browser."""

    status = 409
    slug = "key-not-publishable"
    title = "Stored key is not publishable"


class UnknownProvider(AppError):
    """The provider in the URL is not one keyscope manages."""

    status = 404
    slug = "unknown-provider"
    title = "Unknown provider"


class KeyNotFound(AppError):
    """The caller has no stored key for the provider."""

    status = 404
    slug = "key-not-found"
    title = "Key not found"


class MissingKey(AppError):
    """A route needs a provider key the caller has not stored (and no policy allows another)."""

    status = 409
    slug = "missing-key"
    title = "Provider key required"


class KeyUnreadable(AppError):
    """A stored key failed to decrypt: tampered, copied from another owner, or its master key
    is not in the keyring. Fails closed: nothing is sent upstream, no fallback is tried."""

    status = 409
    slug = "key-unreadable"
    title = "Stored key cannot be decrypted"

    def __init__(
        self,
        detail: str,
        *,
        user_id: str | None = None,
        provider: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__(detail)
        # Which stored key failed, so its status can be recorded; names and hashes only.
        self.user_id = user_id
        self.provider = provider
        self.fingerprint = fingerprint


class KeyInvalid(AppError):
    """The caller's stored key was rejected by its provider; it stays refused (no upstream
    call, no platform key instead) until the caller replaces or re-verifies it."""

    status = 409
    slug = "key-invalid"
    title = "Stored key was rejected by the provider"


class KeyExpired(AppError):
    """The caller's stored key is past its `expires_at`; never replaced by the platform key."""

    status = 409
    slug = "key-expired"
    title = "Stored key has expired"


class PlatformQuotaExceeded(AppError):
    """The caller has spent today's allowance of the operator's (platform) key."""

    status = 429
    slug = "platform-quota-exceeded"
    title = "Platform key quota exhausted"

    def __init__(self, detail: str, *, provider: str, retry_after: int) -> None:
        super().__init__(detail)
        self.provider = provider
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class DatabaseUnavailable(AppError):
    """The database did not answer; the request can be retried."""

    status = 503
    slug = "database-unavailable"
    title = "Database unavailable"

    def __init__(self) -> None:
        super().__init__("The key database is unreachable; retry shortly.")

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class SchemaNotMigrated(AppError):
    """keyscope's tables are missing or behind its migrations: an operator step was skipped."""

    status = 503
    slug = "schema-not-migrated"
    title = "Schema not migrated"

    def __init__(self) -> None:
        super().__init__("The key database schema is not migrated: run `keyscope migrate`.")


class OutsideRequestScope(AppError):
    """A request-scoped value was asked for where no request scope is open (a programming
    error: open one with `request_scope()` in jobs and tests)."""

    status = 500
    slug = "outside-request-scope"
    title = "No request scope"


class OffEventLoop(AppError):
    """A request-scoped value that must load asynchronously was asked for from a thread with
    no running event loop (a programming error: resolve it through the dependencies in
    app/deps.py, or `await awaited(...)` it in async code)."""

    status = 500
    slug = "off-event-loop"
    title = "Called off the event loop"


class ConfigurationError(Exception):
    """The service cannot start with this configuration; the message is one line that names
    the setting (never its value)."""
