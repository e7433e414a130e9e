"""Static scanner: legacy environment reads of managed names, and what no overlay can fix.

`scan_path(path)` parses every `.py` file (stdlib `ast`, nothing is imported or run) and
reports, each with its fix:

* reads and writes of managed names (`os.getenv("X")`, `os.environ["X"]`, `.get`,
  `"X" in os.environ`, aliases imported from `os`), and reads that run at import time;
* `genai.Client(...)` calls that leave the key to an environment read: no `api_key=` (the
  SDK reads GOOGLE_API_KEY / GEMINI_API_KEY itself) or `api_key=os.getenv(...)` of a
  managed name;
* patterns the overlay cannot make safe: `@lru_cache`/`@cache` functions that read managed
  names or build settings, settings and SDK clients created at import time,
  `genai.configure()`, raw threads and executors that drop the request's context,
  `os.environb`, and child processes started without an explicit `env=`.

Names are resolved through the file's imports (`import os as o`, `from os import environ`),
so a local function that happens to be called `getenv` is not reported. What it cannot see:
names built at run time (`os.getenv(f"{p}_API_KEY")`), reads hidden behind another
module's helper, and libraries that read the env themselves (those see the overlay anyway).
"""

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from keyscope.app.legacy.scan.rules import FIX, FindingKind
from keyscope.app.legacy.scan.visitor import reports_for

__all__ = ["Finding", "FindingKind", "scan_path", "scan_source"]

_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One reported site: `message` says what is wrong there and how to fix it."""

    path: Path
    line: int
    kind: FindingKind
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.kind}] {self.name}: {self.message}"


def scan_path(path: Path) -> list[Finding]:
    """Findings for one `.py` file or every `.py` file under a directory, by path then line.

    Directories named `.*`, `__pycache__`, `venv`, `site-packages`, `node_modules` are
    skipped (virtualenvs and caches are not the project's code).
    """
    findings: list[Finding] = []
    for file in _python_files(path):
        try:
            source = file.read_bytes()
        except OSError as exc:
            findings.append(_unparsable(file, 1, f"cannot be read ({exc.strerror})"))
            continue
        findings.extend(scan_source(source, file))
    return sorted(findings, key=lambda f: (str(f.path), f.line, f.kind.value, f.name))


def scan_source(source: str | bytes, path: Path) -> list[Finding]:
    """Findings for one module's source text (`path` is only reported, never opened)."""
    try:
        reports = reports_for(ast.parse(source, filename=str(path)))
    except SyntaxError as exc:
        return [_unparsable(path, exc.lineno or 1, f"is not valid Python ({exc.msg})")]
    except ValueError as exc:  # e.g. null bytes in the source
        return [_unparsable(path, 1, f"is not valid Python ({exc})")]
    except RecursionError:  # pathologically nested code: report it, don't crash the scan
        return [_unparsable(path, 1, "is nested too deeply to analyse")]
    findings = [Finding(path, *report) for report in reports]
    return sorted(findings, key=lambda f: (f.line, f.kind.value, f.name))


def _python_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(root) / name


def _unparsable(path: Path, line: int, why: str) -> Finding:
    kind = FindingKind.UNPARSABLE
    return Finding(path, line, kind, path.name, f"{path.name} {why}. Fix: {FIX[kind]}")
