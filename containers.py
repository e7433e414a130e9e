"""The composition root: every object keyscope builds, and how long each one lives.

App lifetime (Singleton): settings, engine, keyring and cipher, the encrypted-record cache, the
key store, the token verifier, shared HTTP pools. Request lifetime (`RequestScoped`, see
app/scoped_providers.py): the caller's principal and `UserKeys`. Per injection (`Built`):
provider clients, cheap because they borrow the shared pools.

Only wiring lives here: how each object is made is in app/factories.py (from settings) and
app/clients.py (provider clients). Tests build their own container
(`Container(settings=providers.Object(...))`) and override any provider; nothing here is
wired into modules globally.
"""

from dependency_injector import containers
from dependency_injector import providers as di  # not to be confused with our `providers`

from keyscope.app.clients import copilotkit_for, exa_for, gemini_for
from keyscope.app.db import make_engine
from keyscope.app.factories import (
    authenticate,
    build_coherence,
    build_keyring,
    build_policy,
    build_token_verifier,
    build_validator,
    db_deadline,
    load_settings,
)
from keyscope.app.keys.cache import RecordCache
from keyscope.app.keys.events import EventLog
from keyscope.app.keys.health import KeyHealth
from keyscope.app.keys.quota import PlatformQuota
from keyscope.app.keys.records import UserRecords
from keyscope.app.keys.store import KeyStore
from keyscope.app.keys.usage import UsageTracker
from keyscope.app.keys.user_keys import load_user_keys
from keyscope.app.metrics import Metrics
from keyscope.app.scope import current_bearer_token
from keyscope.app.scoped_providers import Built, RequestScoped
from keyscope.app.security.envelope import EnvelopeCipher
from keyscope.providers.http import SharedHttp


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
    coherence = di.Singleton(build_coherence, settings, record_cache)
    key_store = di.Singleton(
        KeyStore,
        engine,
        cipher,
        record_cache,
        coherence,
        deadline_seconds=di.Callable(db_deadline, settings),
    )
    token_verifier = di.Singleton(build_token_verifier, settings)
    key_policy = di.Singleton(build_policy, settings)

    # One pool and SSL context per process; closed by the app's lifespan.
    http = di.Singleton(
        SharedHttp,
        read_timeout=settings.provided.upstream_timeout,
        deadline=settings.provided.upstream_timeout,
        stream_idle=settings.provided.upstream_stream_idle,
        stream_deadline=settings.provided.upstream_stream_timeout,
    )

    bearer_token = di.Callable(current_bearer_token)
    principal = RequestScoped(authenticate, bearer_token, token_verifier)
    user_keys = RequestScoped(load_user_keys, principal, key_store, key_policy)

    # Key lifecycle: usage counted in memory and flushed by a thread the lifespan runs; the
    # platform quota counted in the database; validation through the shared pools.
    usage = di.Singleton(
        UsageTracker,
        engine,
        flush_interval=settings.provided.usage_flush_interval,
        enabled=settings.provided.usage_tracking,
    )
    platform_quota = di.Singleton(
        PlatformQuota, engine, settings.provided.platform_quota_limits.call()
    )
    event_log = di.Singleton(EventLog, engine)
    metrics = di.Singleton(Metrics, usage, record_cache)
    key_validator = di.Singleton(build_validator, settings, http, metrics)
    key_health = di.Singleton(KeyHealth, key_store, metrics)

    # The base URLs as app-lifetime values: `settings.provided.<name>` would be resolved again
    # on every client build, i.e. on every request. Like every Singleton derived from
    # settings, they are read once; override them (or build a new container) to change them.
    gemini_base_url = di.Singleton(getattr, settings, "gemini_base_url")
    exa_base_url = di.Singleton(getattr, settings, "exa_base_url")
    copilotkit_base_url = di.Singleton(getattr, settings, "copilotkit_base_url")

    gemini_client = Built(gemini_for, user_keys, http, gemini_base_url, usage, platform_quota)
    exa_client = Built(exa_for, user_keys, http, exa_base_url, usage, platform_quota)
    copilotkit_client = Built(
        copilotkit_for,
        user_keys,
        http,
        copilotkit_base_url,
        usage,
        platform_quota,
    )
