"""Legacy compatibility: code that reads provider keys from `os.environ` keeps working, safely.

* `overlay`: the per-request overlay on `os.environ` (install / uninstall, read counters).
* `helpers`: context-carrying threads and executors, `subprocess_env()`, the shim for
  `google.generativeai.configure()`.
* `scan`: a static scanner listing legacy env reads and the patterns no overlay can fix.

Nothing here is imported by default: importing `app.legacy` has no side effects.
"""
