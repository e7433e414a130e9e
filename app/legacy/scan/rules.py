"""What `scanner.py` looks for: the dotted names it recognises, and the fix for each kind."""

from enum import StrEnum
from typing import Final

from keyscope.app.legacy.overlay import MANAGED_NAMES


class FindingKind(StrEnum):
    ENV_READ = "env-read"
    ENV_WRITE = "env-write"
    IMPORT_TIME_READ = "import-time-read"
    CACHED_SETTINGS = "cached-settings"
    MODULE_SETTINGS = "module-settings"
    MODULE_CLIENT = "module-client"
    SDK_ENV_KEY = "sdk-env-key"
    GENAI_CONFIGURE = "genai-configure"
    RAW_THREAD = "raw-thread"
    THREAD_POOL = "thread-pool"
    RUN_IN_EXECUTOR = "run-in-executor"
    ENVIRONB = "environb"
    SUBPROCESS_ENV = "subprocess-env"
    UNPARSABLE = "unparsable"


FIX: Final[dict[FindingKind, str]] = {
    FindingKind.ENV_READ: (
        "inject the key (a provider client or UserKeys dependency) instead; until then the "
        "overlay serves the requesting user's key here and read_counts() lists this site"
    ),
    FindingKind.ENV_WRITE: (
        "pass the key to the client instead of the environment; under the overlay a write "
        "inside a request stays in that request, and os.putenv() reaches child processes"
    ),
    FindingKind.IMPORT_TIME_READ: (
        "read it inside the function that uses it (per request), or inject the key"
    ),
    FindingKind.CACHED_SETTINGS: (
        "drop the cache, or cache only key-free settings and take keys per request from UserKeys"
    ),
    FindingKind.MODULE_SETTINGS: (
        "build settings that hold provider keys per request (a dependency), or keep provider "
        "keys out of module-level settings"
    ),
    FindingKind.MODULE_CLIENT: (
        "create the client per request with the user's key (a container Factory on shared "
        "HTTP pools)"
    ),
    FindingKind.SDK_ENV_KEY: (
        "pass the requesting user's key explicitly: inject GeminiDep, or build "
        "genai.Client(api_key=user_keys.secret_for(ProviderName.GEMINI)) from UserKeysDep; "
        "until then only the legacy overlay (KEYSCOPE_LEGACY_ENV=overlay) makes this read "
        "the user's key"
    ),
    FindingKind.GENAI_CONFIGURE: (
        "create a google-genai Client per request with api_key=...; meanwhile "
        "keyscope.app.legacy.overlay.helpers.patch_genai_configure() makes configure() per request"
    ),
    FindingKind.RAW_THREAD: (
        "use keyscope.app.legacy.overlay.helpers.start_thread() / ContextThread, "
        "which carry the request's context"
    ),
    FindingKind.THREAD_POOL: (
        "use keyscope.app.legacy.overlay.helpers.ContextThreadPoolExecutor, or asyncio.to_thread"
    ),
    FindingKind.RUN_IN_EXECUTOR: (
        "use keyscope.app.legacy.overlay.helpers.run_in_executor(loop, executor, fn, *args), "
        "or asyncio.to_thread"
    ),
    FindingKind.ENVIRONB: "read os.environ (str) instead, or inject the key",
    FindingKind.SUBPROCESS_ENV: (
        "if the child needs a provider key pass "
        "env=keyscope.app.legacy.overlay.helpers.subprocess_env(); otherwise pass env= "
        "explicitly to show it does not"
    ),
    FindingKind.UNPARSABLE: "fix the syntax (or exclude the file) so the scan can check it",
}

ENV_MAPPING: Final = "os.environ"
ENV_GETTERS: Final = frozenset({"os.getenv", "os.environ.get"})
LRU_CACHES: Final = frozenset({"functools.lru_cache", "functools.cache"})
GENAI_CONFIGURE: Final = frozenset(
    {"google.generativeai.configure", "google.generativeai.client.configure"}
)
GENAI_CLIENTS: Final = frozenset({"google.genai.Client", "google.genai.client.Client"})
RAW_THREADS: Final = frozenset({"threading.Thread", "threading.Timer"})
THREAD_POOLS: Final = frozenset(
    {"concurrent.futures.ThreadPoolExecutor", "concurrent.futures.thread.ThreadPoolExecutor"}
)
PROCESS_STARTERS: Final = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
        "os.system",
        "os.popen",
    }
)
RAW_BYTES_ENV: Final = frozenset({"os.environb", "os.getenvb"})
CLIENT_CONSTRUCTORS: Final = frozenset(
    {
        "google.genai.Client",
        "google.genai.client.Client",
        "google.generativeai.GenerativeModel",
        "exa_py.Exa",
        "exa_py.AsyncExa",
        "openai.OpenAI",
        "openai.AsyncOpenAI",
    }
)


def is_managed(name: str) -> bool:
    return name in MANAGED_NAMES
