"""How the app-lifetime objects are made from settings (the container only wires them).

Settings are read here and nowhere below: the keyring, the token verifier and the key policy
take plain values, so they can be built by hand in tests.
"""

from functools import partial

from keyscope.app.awaitables import MaybeAwaitable
from keyscope.app.errors import ConfigurationError
from keyscope.app.keys.cache import RecordCache
from keyscope.app.keys.coherence import Coherence, LocalOnly, SqliteRevisions, is_private_sqlite
from keyscope.app.keys.policy import KeyPolicy
from keyscope.app.keys.records import UserRecords
from keyscope.app.keys.validation import KeyValidator
from keyscope.app.local_dev import with_local_secrets
from keyscope.app.metrics import Metrics
from keyscope.app.security.jwks import JwksKeys
from keyscope.app.security.keyring import Keyring
from keyscope.app.security.tokens import Principal, TokenVerifier
from keyscope.app.settings import Settings, read_settings
from keyscope.providers import ProviderName
from keyscope.providers.http import SharedHttp


def load_settings() -> Settings:
    settings = with_local_secrets(read_settings())
    settings.check_production()
    return settings


def build_keyring(settings: Settings) -> Keyring:
    if settings.master_keys is None:
        raise ConfigurationError("KEYSCOPE_MASTER_KEYS is not set")
    return Keyring.parse(settings.master_keys.get_secret_value())


def build_token_verifier(settings: Settings) -> TokenVerifier:
    """Pins algorithms to the key kind unless KEYSCOPE_JWT_ALGORITHMS says otherwise."""
    configured = [a.strip() for a in (settings.jwt_algorithms or "").split(",") if a.strip()]
    verifier = partial(
        TokenVerifier,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway,
        max_ttl=settings.jwt_max_ttl,
        require_low_s=settings.jwt_require_low_s,
    )
    if settings.jwt_jwks_url:
        jwks = JwksKeys(
            settings.jwt_jwks_url,
            refresh_seconds=max(settings.jwt_jwks_refresh, settings.jwt_jwks_min_interval),
            min_fetch_interval=settings.jwt_jwks_min_interval,
        )
        return verifier(algorithms=configured or ["RS256"], jwks=jwks)
    if settings.jwt_public_key:
        pem = settings.jwt_public_key
        default = ["ES256"] if "BEGIN EC PUBLIC KEY" in pem or _is_ec(pem) else ["RS256"]
        return verifier(algorithms=configured or default, key=pem)
    if settings.jwt_secret is None:
        raise ConfigurationError("no JWT verification key is configured")
    return verifier(algorithms=configured or ["HS256"], key=settings.jwt_secret.get_secret_value())


def _is_ec(pem: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return isinstance(load_pem_public_key(pem.encode()), ec.EllipticCurvePublicKey)


def build_policy(settings: Settings) -> KeyPolicy:
    platform = settings.platform_keys()
    fallback = frozenset(platform) if not settings.is_production else settings.fallback_providers()
    return KeyPolicy(platform_keys=platform, fallback=fallback)


def authenticate(token: str | None, verifier: TokenVerifier) -> MaybeAwaitable[Principal]:
    """The principal, at once when the token is cached or the key is static (HS256, PEM); an
    awaitable only when a JWKS key may have to be fetched."""
    principal = verifier.verify_now(token)
    return principal if principal is not None else verifier.verify(token)


def build_coherence(settings: Settings, cache: RecordCache[UserRecords]) -> Coherence:
    """How this process hears of its peers' key writes (see app/keys/coherence.py)."""
    url = settings.database_url
    if settings.cache_coherence == "single-process" or not cache.enabled:
        return LocalOnly()
    timeout = settings.db_statement_timeout_ms / 1000
    if url.startswith("sqlite"):
        if is_private_sqlite(url):
            return LocalOnly()
        return SqliteRevisions(url, cache, timeout=timeout)
    from keyscope.app.keys.listener import PostgresNotify  # psycopg: the `postgres` extra

    return PostgresNotify(
        url,
        cache,
        heartbeat_seconds=settings.listener_heartbeat,
        timeout_seconds=min(timeout, 2 * settings.listener_heartbeat),
        retry_seconds=settings.listener_retry,
    )


def db_deadline(settings: Settings) -> float:
    """How long a request waits for one database call: a little over the statement timeout,
    so the server's own error normally arrives first."""
    return settings.db_statement_timeout_ms / 1000 + 1.0


def build_validator(settings: Settings, http: SharedHttp, metrics: Metrics) -> KeyValidator:
    """Save-time key checks on the shared pools; each outcome counted for /metrics."""

    def count(provider: ProviderName, outcome: str) -> None:
        metrics.validations.labels(provider.value, outcome).inc()

    return KeyValidator(
        http,
        gemini_base_url=settings.gemini_base_url,
        exa_base_url=settings.exa_base_url,
        copilotkit_runtime_url=settings.copilotkit_base_url,
        timeout=settings.key_validation_timeout,
        on_outcome=count,
    )
