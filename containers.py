"""The composition root: every object keyscope builds, and how long each one lives.

App lifetime (Singleton): settings, engine, keyring and cipher, the encrypted-record cache, the
key store, the token verifier, shared HTTP pools. Request lifetime (`RequestScoped`, see
app/scope.py): the caller's principal and `UserKeys`. Per injection (Factory): provider
clients, cheap because they borrow the shared pools.

Tests build their own container (`Container(settings=providers.Object(...))`) and override
any provider; nothing here is wired into modules globally.
"""

from collections.abc import Awaitable
from functools import partial

import jwt
from dependency_injector import containers
from dependency_injector import providers as di  # not to be confused with our `providers`

from keyscope.app.db import make_engine
from keyscope.app.key_origin import note_key_origin
from keyscope.app.keys.cache import RecordCache
from keyscope.app.keys.records import UserRecords
from keyscope.app.keys.store import KeyStore
from keyscope.app.local_dev import with_local_secrets
from keyscope.app.scope import AwaitingFactory, RequestScoped, current_bearer_token
from keyscope.app.security.envelope import EnvelopeCipher
from keyscope.app.security.keyring import Keyring
from keyscope.app.security.tokens import Principal, TokenVerifier
from keyscope.app.settings import Settings
from keyscope.app.user_keys import KeyPolicy, UserKeys, load_user_keys
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp


def load_settings() -> Settings:
    settings = with_local_secrets(Settings())
    settings.check_production()
    return settings


def build_keyring(settings: Settings) -> Keyring:
    if settings.master_keys is None:
        from keyscope.app.errors import ConfigurationError

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
    )
    if settings.jwt_jwks_url:
        client = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=5)
        return verifier(algorithms=configured or ["RS256"], jwks_client=client)
    if settings.jwt_public_key:
        pem = settings.jwt_public_key
        default = ["ES256"] if "BEGIN EC PUBLIC KEY" in pem or _is_ec(pem) else ["RS256"]
        return verifier(algorithms=configured or default, key=pem)
    if settings.jwt_secret is None:
        from keyscope.app.errors import ConfigurationError

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


def _key_for(keys: UserKeys, provider: ProviderName) -> str:
    """The plaintext key a client is built with; notes on the response whose key it is."""
    resolved = keys.require(provider)
    note_key_origin(provider, resolved.origin)
    return resolved.secret.reveal()


def gemini_for(keys: UserKeys, http: SharedHttp, base_url: str) -> GeminiClient:
    return GeminiClient(_key_for(keys, ProviderName.GEMINI), base_url=base_url, http=http)


def exa_for(keys: UserKeys, http: SharedHttp, base_url: str) -> ExaClient:
    return ExaClient(_key_for(keys, ProviderName.EXA), base_url=base_url, http=http)


def copilotkit_for(keys: UserKeys, http: SharedHttp, runtime_url: str) -> CopilotKitClient:
    secret = _key_for(keys, ProviderName.COPILOTKIT)
    return CopilotKitClient(secret, runtime_url=runtime_url, http=http)


def authenticate(token: str | None, verifier: TokenVerifier) -> Principal | Awaitable[Principal]:
    """The principal, at once when the token is cached or the key is static (HS256, PEM); an
    awaitable only when a JWKS key may have to be fetched."""
    principal = verifier.verify_now(token)
    return principal if principal is not None else verifier.verify(token)


class Container(containers.DeclarativeContainer):
    settings = di.Singleton(load_settings)

    engine = di.Singleton(
        make_engine,
        settings.provided.database_url,
        statement_timeout_ms=settings.provided.db_statement_timeout_ms,
    )
    keyring = di.Singleton(build_keyring, settings)
    cipher = di.Singleton(EnvelopeCipher, keyring)
    record_cache = di.Singleton(
        RecordCache[UserRecords],
        ttl_seconds=settings.provided.key_cache_ttl,
        max_users=settings.provided.key_cache_max_users,
    )
    key_store = di.Singleton(KeyStore, engine, cipher, record_cache)
    token_verifier = di.Singleton(build_token_verifier, settings)
    key_policy = di.Singleton(build_policy, settings)

    # One pool and SSL context per process; closed by the app's lifespan.
    http = di.Singleton(SharedHttp, read_timeout=settings.provided.upstream_timeout)

    bearer_token = di.Callable(current_bearer_token)
    principal = RequestScoped(authenticate, bearer_token, token_verifier)
    user_keys = RequestScoped(load_user_keys, principal, key_store, key_policy)

    gemini_client = AwaitingFactory(gemini_for, user_keys, http, settings.provided.gemini_base_url)
    exa_client = AwaitingFactory(exa_for, user_keys, http, settings.provided.exa_base_url)
    copilotkit_client = AwaitingFactory(
        copilotkit_for, user_keys, http, settings.provided.copilotkit_base_url
    )


# Async modes are pinned by the provider classes themselves, never left to the first request
# (or a test override) to decide, and kept by every container instance's copies:
# `RequestScoped` passes values through as they are (the plain value when ready: no future,
# no event-loop iteration; a task while loading; consumers use `app.scope.awaited()`, as the
# FastAPI aliases in app.deps do); `AwaitingFactory` awaits what is still loading and always
# returns an awaitable.
