"""Counts of overlay reads of managed names, per call site (`file:line` of the legacy caller).

The counters tell a team which call sites still depend on the legacy adapter, so the adapter
can be switched off once they reach zero. They sit on the hot path of every managed read, so
they are a frame walk and one dict update, inlined in the overlay's read path:

* The call site is the first frame outside the *plumbing*: the `os`, `posixpath` and
  `_collections_abc` modules (frozen in 3.11, hence `<frozen ...>` file names), the overlay package,
  and pydantic-settings (a `BaseSettings()` built in a request is counted where it is built,
  not inside the library). Whether a file is plumbing is decided once per file name.
* Counts are kept per (code object id, bytecode offset): both O(1) to read, where a
  frame's `f_lineno` costs time proportional to the function's size. `CallSites.lines()` turns
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


def is_plumbing(filename: str) -> bool:
    """Whether frames of `filename` are plumbing (skipped when naming a call site)."""
    if filename.startswith("<frozen "):
        return True
    resolved = str(Path(filename).resolve()) if os.path.isabs(filename) else filename
    return resolved in _PLUMBING_FILES or resolved.startswith(_PLUMBING_PREFIXES)


class CallSites:
    """The read counters of one process. The overlay's read path updates `counts` and
    `plumbing` directly (attribute loads, no method call) and calls the methods only on the
    first read at a new site or in a new file."""

    __slots__ = ("_codes", "counts", "plumbing")

    def __init__(self) -> None:
        self.counts: dict[tuple[int, int], int] = {}  # (id(code), f_lasti) -> reads
        self.plumbing: dict[str, bool] = {}  # file name -> is plumbing
        self._codes: dict[int, CodeType] = {}  # id -> code object of every counted site

    def classify(self, filename: str) -> bool:
        """`is_plumbing(filename)`, remembered for the next read from the same file."""
        plumbing = is_plumbing(filename)
        self.plumbing[filename] = plumbing
        return plumbing

    def keep(self, code: CodeType) -> None:
        """Called on the first read at a new site: keep `code` (and so its id) for `lines()`."""
        self._codes[id(code)] = code

    def lines(self) -> dict[str, int]:
        """Reads so far, by `file:line` of the caller, sorted by site."""
        by_line: Counter[tuple[str, int]] = Counter()
        for (code_id, offset), count in list(self.counts.items()):  # one atomic copy
            code = self._codes.get(code_id)
            if code is not None:
                by_line[code.co_filename, _line_of(code, offset)] += count
        return {f"{file}:{line}": count for (file, line), count in sorted(by_line.items())}

    def reset(self) -> None:
        """Forget every count (e.g. after a deploy, or between tests)."""
        self.counts.clear()
        self._codes.clear()


def _line_of(code: CodeType, offset: int) -> int:
    for start, end, line in code.co_lines():
        if start <= offset < end and line is not None:
            return line
    return code.co_firstlineno
