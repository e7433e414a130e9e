"""Counts of overlay reads of managed names, per call site (`file:line` of the legacy caller).

The counters tell a team which call sites still depend on the legacy adapter, so the adapter
can be switched off once they reach zero. They sit on the hot path of every managed read, so
they are a frame walk and one dict update, inlined in the overlay's read path:

* The call site is the first frame outside the *plumbing*: the `os`, `posixpath` and
  `_collections_abc` modules (frozen in 3.11, hence `<frozen ...>` file names), this package,
  and pydantic-settings (a `BaseSettings()` built in a request is counted where it is built,
  not inside the library). Whether a file is plumbing is decided once per file name.
* Counts are kept per (code object id, bytecode offset): both O(1) to read, where a
  frame's `f_lineno` costs time proportional to the function's size. `read_counts()` turns
  offsets into `file:line` (the code objects are kept alive, so their ids stay unique).
* No lock: under heavy thread contention an increment can be lost (two threads racing the
  same site). They never over-count and never raise; they locate call sites, they don't bill.
"""

import importlib.util
import os
import sys
from collections import Counter
from pathlib import Path
from types import CodeType

# Updated in place only (never rebound): the overlay's hot path holds these dicts.
counts: dict[tuple[int, int], int] = {}  # (id(code), f_lasti) -> reads
plumbing_cache: dict[str, bool] = {}  # file name -> is plumbing
_codes: dict[int, CodeType] = {}  # id -> code object of every counted site


def _plumbing_prefixes() -> tuple[str, ...]:
    prefixes = [str(Path(__file__).resolve().parent) + os.sep]
    spec = importlib.util.find_spec("pydantic_settings")
    if spec is not None and spec.origin is not None:
        prefixes.append(str(Path(spec.origin).resolve().parent) + os.sep)
    return tuple(prefixes)


_PLUMBING_PREFIXES = _plumbing_prefixes()
# When frozen modules are off (`-X frozen_modules=off`), these have real file names.
_PLUMBING_FILES = frozenset(
    str(Path(file).resolve())
    for module in (os, os.path, sys.modules["_collections_abc"])
    if (file := getattr(module, "__file__", None)) is not None
)


def classify(filename: str) -> bool:
    """Whether frames of `filename` are plumbing (skipped when naming a call site); cached."""
    if filename.startswith("<frozen "):
        plumbing = True
    else:
        resolved = str(Path(filename).resolve()) if os.path.isabs(filename) else filename
        plumbing = resolved in _PLUMBING_FILES or resolved.startswith(_PLUMBING_PREFIXES)
    plumbing_cache[filename] = plumbing
    return plumbing


def keep(code: CodeType) -> None:
    """Called on the first read at a new site: keep `code` (and so its id) for read_counts()."""
    _codes[id(code)] = code


def read_counts() -> dict[str, int]:
    """Overlay reads of managed names so far, by `file:line` of the caller, sorted by site."""
    by_line: Counter[tuple[str, int]] = Counter()
    for (code_id, offset), count in list(counts.items()):  # one atomic copy: threads count on
        code = _codes.get(code_id)
        if code is not None:
            by_line[code.co_filename, _line_of(code, offset)] += count
    return {f"{file}:{line}": count for (file, line), count in sorted(by_line.items())}


def reset_counts() -> None:
    """Forget every count (e.g. after a deploy, or between tests)."""
    counts.clear()
    _codes.clear()


def _line_of(code: CodeType, offset: int) -> int:
    for start, end, line in code.co_lines():
        if start <= offset < end and line is not None:
            return line
    return code.co_firstlineno
