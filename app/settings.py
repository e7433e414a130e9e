"""Service settings (pydantic-settings, prefix `KEYSCOPE_`, `.env` read too).

Settings are read here and nowhere else: security and database code take values by
constructor, so tests and other apps can build them without an environment.
"""

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyscope.app.errors import ConfigurationError
from keyscope.providers import ProviderName

# Values people paste from examples; refusing them in production catches a forgotten step.
PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "placeholder", "todo", "xxx"}
)

GEMINI_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
EXA_DEFAULT_BASE_URL = "https://api.exa.ai"
COPILOTKIT_DEFAULT_RUNTIME_URL = "https://api.cloud.copilotkit.ai/copilotkit/v1"


def default_state_dir() -> Path:
    """Where local mode keeps its generated secrets and default database: one per-user place
    (`$XDG_STATE_HOME/keyscope`, else `~/.local/state/keyscope`), never the working directory,
    so every command and every project on the machine finds the same dev secrets."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "keyscope"


def _platform(name: str) -> SecretStr | None:
    """A platform key field read from its conventional, unprefixed variable name."""
    return Field(default=None, validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    """Everything the service can be configured with; see README "Configuration"."""

    model_config = SettingsConfigDict(
        env_prefix="KEYSCOPE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    deploy_env: Literal["local", "production"] = Field(
        default="local", validation_alias=AliasChoices("KEYSCOPE_DEPLOY_ENV", "DEPLOY_ENV")
    )
    # Empty: a SQLite file in the state directory (filled in below).
    database_url: str = ""
    # Local mode's generated secrets (KEYSCOPE_STATE_DIR; see default_state_dir()).
    var_dir: Path = Field(
        default_factory=default_state_dir,
        validation_alias=AliasChoices("KEYSCOPE_STATE_DIR", "var_dir"),
    )
    master_keys: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_algorithms: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: int = Field(default=30, ge=0, le=600)
    jwt_max_ttl: int = Field(default=24 * 3600, ge=60)  # longest token lifetime accepted
    jwt_require_low_s: bool = True  # refuse malleable (high-s) ECDSA signatures
    jwt_jwks_refresh: float = Field(default=300.0, ge=1)  # a removed key's longest life
    jwt_jwks_min_interval: float = Field(default=5.0, gt=0)  # fetch rate bound, new-kid wait
    legacy_env: Literal["off", "overlay"] = "off"
    # Managed names outside a request: absent (production default), raise (strict tests),
    # passthrough (local default: CLIs and scripts see the real environment).
    legacy_outside_request: Literal["absent", "raise", "passthrough"] | None = None
    gemini_base_url: str = GEMINI_DEFAULT_BASE_URL
    exa_base_url: str = EXA_DEFAULT_BASE_URL
    copilotkit_base_url: str = COPILOTKIT_DEFAULT_RUNTIME_URL
    platform_fallback: str = ""
    key_cache_ttl: float = Field(default=30.0, ge=0)
    key_cache_max_users: int = Field(default=10_000, ge=1)
    db_statement_timeout_ms: int = Field(default=5_000, ge=100)
    # How a process learns of key writes made by other processes on the same database (README
    # "Several workers and instances"): `auto` (LISTEN/NOTIFY on PostgreSQL, a revision check
    # on a SQLite file) or `single-process` (no other process ever writes: local eviction only).
    cache_coherence: Literal["auto", "single-process"] = "auto"
    listener_heartbeat: float = Field(default=2.0, gt=0, le=60)
    listener_retry: float = Field(default=1.0, gt=0, le=60)
    # Total deadline of one upstream call: connect, send and the whole answer.
    upstream_timeout: float = Field(default=60.0, gt=0)
    # The CopilotKit runtime stream: the longest silence between chunks, and its whole life.
    upstream_stream_idle: float = Field(default=30.0, gt=0)
    upstream_stream_timeout: float = Field(default=600.0, gt=0)
    # Request bodies, enforced before they are read: the keys API, the runtime proxy, the rest.
    keys_body_limit: int = Field(default=8 * 1024, ge=256)  # a 4096-character key fits
    runtime_body_limit: int = Field(default=1024 * 1024, ge=1024)
    body_limit: int = Field(default=512 * 1024, ge=1024)
    gemini_default_model: str = "gemini-2.5-flash"
    # Key lifecycle (README "Key lifecycle").
    key_validation: bool = True
    key_validation_timeout: float = Field(default=5.0, gt=0)
    usage_tracking: bool = True
    usage_flush_interval: float = Field(default=10.0, gt=0)
    platform_quota: str = ""
    metrics_enabled: bool | None = None  # None: on in local mode, off in production

    gemini_api_key: SecretStr | None = _platform("GEMINI_API_KEY")
    google_api_key: SecretStr | None = _platform("GOOGLE_API_KEY")
    exa_api_key: SecretStr | None = _platform("EXA_API_KEY")
    copilotkit_api_key: SecretStr | None = _platform("COPILOTKIT_API_KEY")

    @model_validator(mode="after")
    def _default_database(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'keyscope.db'}"
        return self

    @property
    def is_production(self) -> bool:
        return self.deploy_env == "production"

    def fallback_providers(self) -> frozenset[ProviderName]:
        """Providers whose platform key may stand in for a user's missing key."""
        names = {part.strip() for part in self.platform_fallback.split(",") if part.strip()}
        unknown = names - {p.value for p in ProviderName}
        if unknown:
            raise ConfigurationError(
                f"KEYSCOPE_PLATFORM_FALLBACK names unknown providers: {', '.join(sorted(unknown))}"
            )
        return frozenset(ProviderName(n) for n in names)

    @property
    def metrics_on(self) -> bool:
        return self.metrics_enabled if self.metrics_enabled is not None else not self.is_production

    def platform_quota_limits(self) -> dict[ProviderName, int]:
        """`gemini:100,exa:50` -> requests per UTC day the platform key may serve each user."""
        limits: dict[ProviderName, int] = {}
        for entry in (part.strip() for part in self.platform_quota.split(",")):
            if not entry:
                continue
            name, sep, count = entry.partition(":")
            known = {p.value for p in ProviderName}
            if not sep or name.strip() not in known or not count.strip().isdigit():
                raise ConfigurationError(
                    f"KEYSCOPE_PLATFORM_QUOTA entry {entry[:40]!r} is not provider:requests_per_day"
                )
            limits[ProviderName(name.strip())] = int(count.strip())
        return limits

    def platform_keys(self) -> dict[ProviderName, str]:
        """The operator's own keys by provider (GEMINI_API_KEY wins over GOOGLE_API_KEY)."""
        candidates = {
            ProviderName.GEMINI: self.gemini_api_key or self.google_api_key,
            ProviderName.EXA: self.exa_api_key,
            ProviderName.COPILOTKIT: self.copilotkit_api_key,
        }
        return {p: s.get_secret_value() for p, s in candidates.items() if s is not None}

    def check_production(self) -> None:
        """Refuse to run in production without real secrets: one line naming the setting."""
        if not self.is_production:
            return
        if _is_placeholder(self.master_keys):
            raise ConfigurationError(
                "KEYSCOPE_MASTER_KEYS is required in production (kid:base64-32-bytes, ...)"
            )
        if not (self.jwt_secret or self.jwt_public_key or self.jwt_jwks_url):
            raise ConfigurationError(
                "one of KEYSCOPE_JWT_SECRET, KEYSCOPE_JWT_PUBLIC_KEY or KEYSCOPE_JWT_JWKS_URL "
                "is required in production"
            )
        if self.jwt_secret is not None and _is_placeholder(self.jwt_secret):
            raise ConfigurationError("KEYSCOPE_JWT_SECRET is a placeholder; set a real secret")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            raise ConfigurationError("KEYSCOPE_JWT_SECRET must be at least 32 characters")
        self.fallback_providers()
        self.platform_quota_limits()


def _is_placeholder(value: SecretStr | None) -> bool:
    return value is None or value.get_secret_value().strip().lower() in PLACEHOLDERS


def read_settings() -> Settings:
    """`Settings()` from the environment, invalid values reported as one ConfigurationError
    line per setting name (pydantic's own report is many lines and may quote the value)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise ConfigurationError(f"invalid setting: {problems}") from None


def _variable(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    if name.upper() == name:  # already an environment variable name (an alias)
        return name
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"KEYSCOPE_{name.upper()}"
