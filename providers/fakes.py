"""Loopback fakes of the three upstreams: real HTTP servers that record whose key arrived.

Used by the tests and by `keyscope demo`, hence here and not under tests/. Each vendor gets its
own server on 127.0.0.1 (an ephemeral port), so a client pointed at the wrong vendor gets a 404
instead of a quiet success. They speak each vendor's wire format (the one the client modules
beside this one send) and its own error shapes, and record every request (provider, path with
query, key, body) so a test can say whose key reached the upstream for which request.

Behaviour is chosen by the key's prefix, so one server serves every test:

| key starts with | Gemini                                  | Exa / Copilot Cloud    |
|-----------------|-----------------------------------------|------------------------|
| (no key)        | 403 PERMISSION_DENIED                   | 401                    |
| `reject`        | 400 INVALID_ARGUMENT + API_KEY_INVALID  | 401                    |
|                 | (what Google really sends for bad keys) |                        |
| `forbidden`     | 403 PERMISSION_DENIED                   | 403                    |
| `ratelimit`     | 429, `Retry-After: 7` and RetryInfo 7s  | 429, `Retry-After: 7`  |
| `quota`         | 429, RetryInfo 3s only (no header)      | 429 without header     |
| `boom`          | 500                                     | 500                    |
| `garbage`       | 200 with a body that is not JSON        | same                   |
| `slow`          | answers after `slow_seconds`            | same                   |
| `trickle`       | the answer one byte every 0.2 s         | same (Copilot: stalls  |
|                 |                                         | after its first event) |
| `leak`          | 400 whose message echoes the key whole, | same                   |
|                 | its tail, head and a middle slice       |                        |
| `empty`         | 200 `{}` (no candidates)                | (Exa: 200 `{}`)        |
| `wrongshape`    | 200 `{"candidates": [{"content": 7}]}`  | same body              |

A Gemini model whose name starts with `missing` answers 404 NOT_FOUND.

`FakeUpstreams.behave(key, "reject")` gives any key one of these behaviours from then on (a
key that worked when it was stored and is revoked later); `behave(key, None)` restores it.
The cheap validation calls are served too: Gemini `GET /{v1|v1beta}/models` (models.list)
and Exa's one-result `POST /search`.
"""

import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar

from keyscope.providers import ProviderName

RETRY_AFTER_SECONDS = 7
QUOTA_RETRY_SECONDS = 3
GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro")
COPILOTKIT_RUNTIME_PATH = "/copilotkit/v1"

_Headers = Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class UpstreamRecord:
    """One request as the fake upstream saw it."""

    provider: ProviderName
    method: str
    path: str  # the request target as sent: path and query string
    key: str | None  # the vendor's key header, None when absent
    body: bytes
    headers: Mapping[str, str] = field(repr=False)  # lower-cased names

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    payload: Any  # JSON-serialisable, or bytes sent as they are
    headers: _Headers = ()
    content_type: str = "application/json; charset=UTF-8"

    def body(self) -> bytes:
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload).encode()


class _Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[UpstreamRecord] = []
        self._behaviours: dict[str, str] = {}  # key -> behaviour prefix set by `behave`

    def behaviour_of(self, key: str) -> str:
        """What `key` behaves as: its assigned behaviour, else the key itself (by prefix)."""
        with self._lock:
            return self._behaviours.get(key, key)

    def behave(self, key: str, behaviour: str | None) -> None:
        with self._lock:
            if behaviour is None:
                self._behaviours.pop(key, None)
            else:
                self._behaviours[key] = behaviour

    def add(self, record: UpstreamRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self, provider: ProviderName | None) -> list[UpstreamRecord]:
        with self._lock:
            return [r for r in self._records if provider is None or r.provider is provider]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._behaviours.clear()


@dataclass(frozen=True, slots=True)
class _Options:
    slow_seconds: float
    stream_chunks: int
    stream_delay: float


class _FakeServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler asleep in a `slow` reply must not hold up close()
    request_queue_size = 1024  # the default backlog of 5 stalls 100 simultaneous connects

    def __init__(
        self, handler: type["_VendorHandler"], recorder: _Recorder, options: _Options
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.recorder = recorder
        self.options = options

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or drop a stream hang up on purpose in these tests.
        pass

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _VendorHandler(BaseHTTPRequestHandler):
    """Shared plumbing: read, record, apply the key's behaviour, route, reply."""

    protocol_version = "HTTP/1.1"  # keep-alive: pooled clients reuse connections
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    timeout = 30  # seconds an idle keep-alive connection keeps its thread
    provider: ClassVar[ProviderName]
    key_header: ClassVar[str]
    server: _FakeServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the records are the log

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        key = self.headers.get(self.key_header)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.recorder.add(
            UpstreamRecord(self.provider, self.command, self.path, key, body, headers)
        )
        reply = self._behaviour(key)
        if reply is None:
            reply = self.route(self.command, self.path.split("?", 1)[0], body)
        if reply is not None:
            self._send(reply, trickle=(key or "").removeprefix("ck_pub_").startswith("trickle"))

    def _behaviour(self, full_key: str | None) -> _Reply | None:
        if full_key is None:
            return self.missing_key()
        # A behaviour set by `behave`, else the key's own prefix (after Copilot Cloud's
        # `ck_pub_`, which its keys start with).
        key = self.server.recorder.behaviour_of(full_key).removeprefix("ck_pub_")
        if key.startswith("slow"):
            time.sleep(self.server.options.slow_seconds)
        elif key.startswith("garbage"):
            return _Reply(200, b"<html>upstream proxy error page</html>", content_type="text/html")
        elif key.startswith("leak"):
            k = full_key
            echo = (
                f"key {k} tail {k[-16:]} head {k[:12]} middle {k[len(k) // 3 : len(k) // 3 + 10]}"
            )
            return self.error_reply(400, f"Bad request for {echo}")
        elif key.startswith("empty"):
            return _Reply(200, {})
        elif key.startswith("wrongshape"):
            return _Reply(200, {"candidates": [{"content": 7}]})
        for prefix, reply in self.behaviours():
            if key.startswith(prefix):
                return reply
        return None

    def _send(self, reply: _Reply, *, trickle: bool = False) -> None:
        payload = reply.body()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if not trickle:
            self.wfile.write(payload)
            return
        for index in range(len(payload)):  # each read is quick; the whole answer is not
            self.wfile.write(payload[index : index + 1])
            self.wfile.flush()
            time.sleep(0.2)

    def missing_key(self) -> _Reply:
        raise NotImplementedError

    def error_reply(self, status: int, message: str) -> _Reply:
        raise NotImplementedError

    def behaviours(self) -> Iterable[tuple[str, _Reply]]:
        raise NotImplementedError

    def route(self, method: str, path: str, body: bytes) -> _Reply | None:
        """The reply for an accepted key; None when the handler already wrote its answer."""
        raise NotImplementedError


def _google_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


_GENERATE = re.compile(r"^/(v1|v1beta)/models/([^/:]+):generateContent$")
_LIST_MODELS = re.compile(r"^/(v1|v1beta)/models$")


class _GeminiHandler(_VendorHandler):
    provider = ProviderName.GEMINI
    key_header = "x-goog-api-key"

    def error_reply(self, status: int, message: str) -> _Reply:
        return _Reply(status, _google_error(status, "INVALID_ARGUMENT", message))

    def missing_key(self) -> _Reply:
        message = (
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API."
        )
        return _Reply(403, _google_error(403, "PERMISSION_DENIED", message))

    def behaviours(self) -> Iterable[tuple[str, _Reply]]:
        retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo"}
        yield "reject", _Reply(400, _google_error(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
            [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }],
        ))  # fmt: skip
        yield "forbidden", _Reply(403, _google_error(
            403, "PERMISSION_DENIED", "Permission denied: Consumer has been suspended."
        ))  # fmt: skip
        yield "ratelimit", _Reply(
            429,
            _google_error(
                429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                [{**retry_info, "retryDelay": f"{RETRY_AFTER_SECONDS}s"}],
            ),
            headers=[("Retry-After", str(RETRY_AFTER_SECONDS))],
        )  # fmt: skip
        yield "quota", _Reply(429, _google_error(
            429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.",
            [{**retry_info, "retryDelay": f"{QUOTA_RETRY_SECONDS}s"}],
        ))  # fmt: skip
        yield "boom", _Reply(500, _google_error(
            500, "INTERNAL", "An internal error has occurred. Please retry."
        ))  # fmt: skip

    def route(self, method: str, path: str, body: bytes) -> _Reply | None:
        if method == "POST" and (match := _GENERATE.match(path)):
            return self._generate(match.group(1), match.group(2), body)
        if method == "GET" and _LIST_MODELS.match(path):
            return _Reply(200, {"models": [_model_info(name) for name in GEMINI_MODELS]})
        return _Reply(404, _google_error(404, "NOT_FOUND", "Requested entity was not found."))

    def _generate(self, version: str, model: str, body: bytes) -> _Reply:
        if model.startswith("missing"):
            message = (
                f"models/{model} is not found for API version {version}, "
                "or is not supported for generateContent."
            )
            return _Reply(404, _google_error(404, "NOT_FOUND", message))
        try:
            prompt = _last_user_text(json.loads(body))
        except (ValueError, KeyError, TypeError, IndexError):
            message = "Invalid JSON payload received."
            return _Reply(400, _google_error(400, "INVALID_ARGUMENT", message))
        text = f"echo: {prompt}"
        prompt_tokens = max(1, len(prompt.split()))
        answer_tokens = prompt_tokens + 1
        return _Reply(200, {
            "candidates": [{
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": answer_tokens,
                "totalTokenCount": prompt_tokens + answer_tokens,
            },
            "modelVersion": model,
            "responseId": uuid.uuid4().hex[:22],
        })  # fmt: skip


def _last_user_text(request: dict[str, Any]) -> str:
    user_turns = [c for c in request["contents"] if c.get("role", "user") == "user"]
    return "".join(str(part.get("text", "")) for part in user_turns[-1]["parts"])


def _model_info(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def _exa_error(status: int, message: str, tag: str, headers: _Headers = ()) -> _Reply:
    payload = {"requestId": uuid.uuid4().hex, "error": message, "tag": tag}
    return _Reply(status, payload, headers=headers)


class _ExaHandler(_VendorHandler):
    provider = ProviderName.EXA
    key_header = "x-api-key"

    def error_reply(self, status: int, message: str) -> _Reply:
        return _exa_error(status, message, "INVALID_REQUEST")

    def missing_key(self) -> _Reply:
        return _exa_error(401, "Missing API key: pass it in the x-api-key header", "NO_API_KEY")

    def behaviours(self) -> Iterable[tuple[str, _Reply]]:
        retry = [("Retry-After", str(RETRY_AFTER_SECONDS))]
        yield "reject", _exa_error(401, "Invalid API key", "INVALID_API_KEY")
        yield "forbidden", _exa_error(403, "API key lacks access", "ACCESS_DENIED")
        yield "ratelimit", _exa_error(429, "Rate limit exceeded", "RATE_LIMITED", retry)
        yield "quota", _exa_error(429, "Rate limit exceeded", "RATE_LIMITED")
        yield "boom", _exa_error(500, "Internal server error", "INTERNAL_ERROR")

    def route(self, method: str, path: str, body: bytes) -> _Reply | None:
        if (method, path) != ("POST", "/search"):
            return _exa_error(404, "Not found", "NOT_FOUND")
        try:
            request = json.loads(body)
            query = request["query"]
            count = int(request.get("numResults", 10))
        except (ValueError, KeyError, TypeError):
            return _exa_error(400, "Invalid request body", "INVALID_REQUEST_BODY")
        if not isinstance(query, str) or not query:
            return _exa_error(400, "query must be a non-empty string", "INVALID_REQUEST_BODY")
        results = [
            {
                "id": f"https://example.com/{n}",
                "title": f"{query} #{n}",
                "url": f"https://example.com/{n}",
                "score": round(1 - n / 100, 3),
            }
            for n in range(1, max(1, min(count, 100)) + 1)
        ]
        return _Reply(200, {
            "requestId": uuid.uuid4().hex,
            "resolvedSearchType": "neural",
            "results": results,
            "costDollars": {"total": 0.005},
        })  # fmt: skip


def _copilot_error(status: int, message: str, headers: _Headers = ()) -> _Reply:
    return _Reply(status, {"error": {"code": status, "message": message}}, headers=headers)


class _CopilotCloudHandler(_VendorHandler):
    provider = ProviderName.COPILOTKIT
    key_header = "x-copilotcloud-public-api-key"

    def error_reply(self, status: int, message: str) -> _Reply:
        return _copilot_error(status, message)

    def missing_key(self) -> _Reply:
        return _copilot_error(401, "Missing X-CopilotCloud-Public-Api-Key header")

    def behaviours(self) -> Iterable[tuple[str, _Reply]]:
        retry = [("Retry-After", str(RETRY_AFTER_SECONDS))]
        yield "reject", _copilot_error(401, "Invalid public API key")
        yield "forbidden", _copilot_error(403, "Public API key not allowed for this origin")
        yield "ratelimit", _copilot_error(429, "Too many requests", retry)
        yield "quota", _copilot_error(429, "Too many requests")
        yield "boom", _copilot_error(500, "Internal server error")

    def route(self, method: str, path: str, body: bytes) -> _Reply | None:
        if method != "POST" or not (
            path == COPILOTKIT_RUNTIME_PATH or path.startswith(COPILOTKIT_RUNTIME_PATH + "/")
        ):
            return _copilot_error(404, "Not found")
        self._stream_events(body)
        return None

    def _stream_events(self, body: bytes) -> None:
        """Server-sent events in chunked encoding, one event per chunk, paced like a model."""
        options = self.server.options
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        echo = body[:200].decode("utf-8", errors="replace")
        key = (self.headers.get(self.key_header) or "").removeprefix("ck_pub_")
        for index in range(options.stream_chunks):
            if index == 1 and key.startswith("trickle"):
                time.sleep(options.slow_seconds)  # stalls after the first event
                self.close_connection = True
                return
            event: dict[str, Any] = {"index": index, "of": options.stream_chunks}
            if index == options.stream_chunks - 1:
                event["echo"] = echo  # ties the stream to the request it answers
            data = f"data: {json.dumps(event)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            if index < options.stream_chunks - 1:
                time.sleep(options.stream_delay)
        self.wfile.write(b"0\r\n\r\n")


class FakeUpstreams:
    """Gemini, Exa and Copilot Cloud fakes, listening from construction until `close()`."""

    def __init__(
        self,
        *,
        slow_seconds: float = 2.0,
        stream_chunks: int = 5,
        stream_delay: float = 0.02,
    ) -> None:
        if stream_chunks < 1:
            raise ValueError("stream_chunks must be at least 1")
        self._recorder = _Recorder()
        options = _Options(slow_seconds, stream_chunks, stream_delay)
        self._servers: dict[ProviderName, _FakeServer] = {}
        self._threads: list[threading.Thread] = []
        handlers: dict[ProviderName, type[_VendorHandler]] = {
            ProviderName.GEMINI: _GeminiHandler,
            ProviderName.EXA: _ExaHandler,
            ProviderName.COPILOTKIT: _CopilotCloudHandler,
        }
        try:
            for provider, handler in handlers.items():
                self._start(provider, _FakeServer(handler, self._recorder, options))
        except BaseException:
            self.close()
            raise

    def _start(self, provider: ProviderName, server: _FakeServer) -> None:
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so close() returns promptly
            name=f"fake-{provider.value}",
            daemon=True,
        )
        try:
            thread.start()
        except BaseException:
            server.server_close()
            raise
        # Only a serving server is registered: shutdown() on one that never served would hang.
        self._servers[provider] = server
        self._threads.append(thread)

    @property
    def gemini_base_url(self) -> str:
        return self._servers[ProviderName.GEMINI].base_url

    @property
    def exa_base_url(self) -> str:
        return self._servers[ProviderName.EXA].base_url

    @property
    def copilotkit_base_url(self) -> str:
        return self._servers[ProviderName.COPILOTKIT].base_url

    @property
    def copilotkit_runtime_url(self) -> str:
        return self.copilotkit_base_url + COPILOTKIT_RUNTIME_PATH

    def records(self, provider: ProviderName | None = None) -> list[UpstreamRecord]:
        """Every request so far, in arrival order; only `provider`'s when given."""
        return self._recorder.snapshot(provider)

    def clear(self) -> None:
        """Forget the records and every behaviour set with `behave`."""
        self._recorder.clear()

    def behave(self, key: str, behaviour: str | None) -> None:
        """Make `key` behave as a key starting with `behaviour` (e.g. "reject", "slow") on
        every fake from now on; None restores its own behaviour."""
        self._recorder.behave(key, behaviour)

    def close(self) -> None:
        """Stop listening. Open keep-alive connections end when their clients close them."""
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> "FakeUpstreams":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        urls = ", ".join(f"{p.value}={s.base_url}" for p, s in self._servers.items())
        return f"FakeUpstreams({urls or 'closed'})"
