"""The designs under test, in the order each round runs them."""

from dataclasses import dataclass

from bench.environment import keyscope_settings_env

WARM_TTL = 3600.0  # longer than any run: after warm-up every user's records are cached


@dataclass(frozen=True)
class Variant:
    name: str
    module: str  # ASGI module under bench/apps
    path: str
    label: str
    database: str | None = None  # "sqlite" | "postgresql" | None
    cache_ttl: float = WARM_TTL
    legacy: bool = False
    access_log: bool = False  # uvicorn's access log and info logging, as `--access-log`

    def env(self, urls: dict[str, str]) -> dict[str, str]:
        if self.module == "bench.apps.seed":
            return {"BENCH_SEED_DATABASE_URL": urls["sqlite"], "DEPLOY_ENV": "production"}
        if self.database is None:
            return {}
        return keyscope_settings_env(
            urls[self.database], cache_ttl=self.cache_ttl, legacy=self.legacy
        )


CONFIG = "/v1/copilotkit/config"

VARIANTS = (
    Variant(
        "bare",
        "bench.apps.bare",
        "/bench/config",
        "the floor: FastAPI endpoint returning a hard-coded key, nothing built per request",
    ),
    Variant(
        "bare-access-log",
        "bench.apps.bare",
        "/bench/config",
        "the floor with uvicorn's access log on (`keyscope serve --access-log`)",
        access_log=True,
    ),
    Variant(
        "bare-gemini",
        "bench.apps.bare",
        "/bench/gemini",
        "reference: the floor + a Gemini client built per request from the hard-coded key",
    ),
    Variant(
        "seed",
        "bench.apps.seed",
        "/bench/gemini",
        "BASELINE: seed design (BaseHTTPMiddleware, JWT, SQLModel query, Fernet, os.environ)",
        database="sqlite",
    ),
    Variant(
        "keyscope-warm",
        "bench.apps.keyscope",
        CONFIG,
        "keyscope GET /v1/copilotkit/config, record cache warm (SQLite)",
        database="sqlite",
    ),
    Variant(
        "keyscope-gemini",
        "bench.apps.keyscope",
        "/bench/gemini",
        "keyscope, GeminiDep (client built per request), record cache warm (SQLite)",
        database="sqlite",
    ),
    Variant(
        "keyscope-legacy",
        "bench.apps.keyscope",
        "/bench/legacy",
        "keyscope legacy overlay, os.getenv route building a Gemini client, cache warm (SQLite)",
        database="sqlite",
        legacy=True,
    ),
    Variant(
        "keyscope-miss",
        "bench.apps.keyscope",
        CONFIG,
        "keyscope GET /v1/copilotkit/config, record cache off: 1 query/request (SQLite)",
        database="sqlite",
        cache_ttl=0,
    ),
    Variant(
        "keyscope-pg-warm",
        "bench.apps.keyscope",
        CONFIG,
        "keyscope GET /v1/copilotkit/config, record cache warm (PostgreSQL)",
        database="postgresql",
    ),
    Variant(
        "keyscope-pg-miss",
        "bench.apps.keyscope",
        CONFIG,
        "keyscope GET /v1/copilotkit/config, record cache off: 1 query/request (PostgreSQL)",
        database="postgresql",
        cache_ttl=0,
    ),
)
