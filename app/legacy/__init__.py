"""Legacy compatibility: code that reads provider keys from `os.environ` keeps working, safely.

Three rooms, each importable on its own:

* `overlay`: the per-request overlay on `os.environ` (install / uninstall, read counters) and
  `overlay.helpers` (context-carrying threads and executors, `subprocess_env()`, the shim for
  `google.generativeai.configure()`). Knows nothing of FastAPI, tokens or the container.
* `scan`: a static scanner listing legacy env reads and the patterns no overlay can fix
  (`keyscope legacy scan PATH`). Parses source only; imports nothing it scans.
* `wiring`: what binds the overlay to keyscope: the ASGI middleware that hands it the
  request's UserKeys, install/uninstall at start-up and shutdown, and the example legacy
  service with its `/v1/legacy/gemini/*` routes.

Nothing here is imported by default: importing `keyscope.app.legacy` has no side effects.
"""
