"""The AST walk behind `scanner.py`: one module in, `(line, kind, name, message)` reports out.

It resolves names through the module's imports (and knows when a function's own variable
shadows one), tracks whether code runs at import time (module and class bodies, decorators,
default arguments) or later (function bodies, `if __name__ == "__main__":`), and applies
the rules in `rules.py`.
"""

import ast
import re
from collections.abc import Iterator
from typing import NamedTuple

from keyscope.app.legacy.scan.rules import (
    CLIENT_CONSTRUCTORS,
    ENV_GETTERS,
    ENV_MAPPING,
    FIX,
    GENAI_CLIENTS,
    GENAI_CONFIGURE,
    LRU_CACHES,
    PROCESS_STARTERS,
    RAW_BYTES_ENV,
    RAW_THREADS,
    THREAD_POOLS,
    FindingKind,
    is_managed,
)


class Report(NamedTuple):
    line: int
    kind: FindingKind
    name: str
    message: str


def reports_for(tree: ast.Module) -> list[Report]:
    """Everything worth reporting in one parsed module, in walk order."""
    visitor = _Visitor(_imports_of(tree), _string_constants(tree), _settings_classes(tree))
    visitor.visit(tree)
    return visitor.reports


# --- what a module imports and defines ----------------------------------------------------------


def _imports_of(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name it stands for (`o` -> `os`, `getenv` -> `os.getenv`)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "literal"`, so `os.getenv(KEY_VAR)` is understood too."""
    constants: dict[str, str] = {}
    for node in tree.body:
        target: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            constants[target.id] = value.value
    return constants


def _settings_classes(tree: ast.Module) -> frozenset[str]:
    """Classes defined here that derive from BaseSettings (directly or from one another)."""
    found: set[str] = set()
    changed = True
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    while changed:
        changed = False
        for cls in classes:
            if cls.name in found:
                continue
            for base in cls.bases:
                if _last_name(base) == "BaseSettings" or _last_name(base) in found:
                    found.add(cls.name)
                    changed = True
                    break
    return frozenset(found)


# --- the visitor --------------------------------------------------------------------------------


class _Visitor(ast.NodeVisitor):
    """Walks one module, knowing whether the code at hand runs at import time."""

    def __init__(
        self, imports: dict[str, str], constants: dict[str, str], settings_classes: frozenset[str]
    ) -> None:
        self.imports = imports
        self.constants = constants
        self.settings_classes = settings_classes
        self.reports: list[Report] = []
        self.at_import = True  # module and class bodies run on import; function bodies don't
        self.local_scopes: list[frozenset[str]] = []  # names bound by the enclosing functions

    # -- helpers --

    def report(self, node: ast.AST, kind: FindingKind, name: str, what: str) -> None:
        line = getattr(node, "lineno", 1)
        self.reports.append(Report(line, kind, name, f"{what}. Fix: {FIX[kind]}"))

    def dotted(self, node: ast.expr) -> str | None:
        """The dotted name an expression stands for, through this module's imports."""
        if isinstance(node, ast.Name):
            if any(node.id in scope for scope in self.local_scopes):
                return None  # a local variable or function shadows the import
            return self.imports.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        return None

    def managed_name(self, node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
        elif isinstance(node, ast.Name) and node.id in self.constants:
            value = self.constants[node.id]
        else:
            return None
        return value if is_managed(value) else None

    def is_settings_call(self, call: ast.Call) -> bool:
        name = _last_name(call.func)
        return name in self.settings_classes or name.endswith("Settings")

    def env_read(self, node: ast.expr) -> str | None:
        """The managed name `node` reads from the environment, if it is such a read."""
        if isinstance(node, ast.Call) and node.args:
            if self.dotted(node.func) in ENV_GETTERS:
                return self.managed_name(node.args[0])
            if self.dotted(node.func) == "os.path.expandvars":
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    return next((n for n in _names_in_template(arg.value) if is_managed(n)), None)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and self.dotted(node.value) == ENV_MAPPING
        ):
            return self.managed_name(node.slice)
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and self.dotted(node.comparators[0]) == ENV_MAPPING
        ):
            return self.managed_name(node.left)
        return None

    # -- scopes --

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # Decorators, defaults and annotations run where the function is defined.
        for decorator in node.decorator_list:
            self.visit(decorator)
        decorators = [
            self.dotted(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list
        ]
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self.local_scopes.append(_local_names(node))
        self.check_cached(node, decorators)
        self.visit_body(node.body, at_import=False)
        self.local_scopes.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_FunctionDef(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        saved, self.at_import = self.at_import, False
        self.local_scopes.append(_local_names(node))
        self.visit(node.body)
        self.local_scopes.pop()
        self.at_import = saved

    def visit_If(self, node: ast.If) -> None:
        # `if __name__ == "__main__":` runs when executed as a script, never on import.
        test = node.test
        is_main = (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
        )
        if not is_main:
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.visit_body(node.body, at_import=False)
        self.visit_body(node.orelse, at_import=self.at_import)

    def visit_body(self, body: list[ast.stmt], *, at_import: bool) -> None:
        saved, self.at_import = self.at_import, at_import
        for statement in body:
            self.visit(statement)
        self.at_import = saved

    def check_cached(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, decorators: list[str | None]
    ) -> None:
        """`decorators`: the dotted names of node's decorators, resolved where it is defined."""
        for decorator, cache in zip(node.decorator_list, decorators, strict=True):
            if cache not in LRU_CACHES:
                continue
            inside = list(ast.walk(node))
            reads = any(isinstance(n, ast.expr) and self.env_read(n) for n in inside)
            builds = any(isinstance(n, ast.Call) and self.is_settings_call(n) for n in inside)
            if reads or builds:
                what = "reads a managed name" if reads else "builds settings"
                self.report(
                    decorator,
                    FindingKind.CACHED_SETTINGS,
                    cache,
                    f"@{cache.rsplit('.', 1)[-1]} on {node.name}() {what}: the first caller's "
                    "key is cached for every later user",
                )

    # -- expressions --

    def visit_Call(self, node: ast.Call) -> None:
        dotted = self.dotted(node.func)
        managed = self.env_read(node)
        if managed is not None:
            self.report_read(node, managed)
        elif dotted in ("os.putenv", "os.unsetenv", "os.environ.setdefault", "os.environ.pop"):
            name = self.managed_name(node.args[0]) if node.args else None
            if name is not None:
                self.report(node, FindingKind.ENV_WRITE, name, f"{dotted}({name!r})")
        if dotted in GENAI_CONFIGURE:
            self.report(
                node,
                FindingKind.GENAI_CONFIGURE,
                dotted,
                "genai.configure() sets the key for the whole process",
            )
        elif dotted in RAW_THREADS:
            self.report(
                node,
                FindingKind.RAW_THREAD,
                dotted,
                "a new thread starts without the request's context: managed names "
                "read as absent there",
            )
        elif dotted in THREAD_POOLS:
            self.report(
                node,
                FindingKind.THREAD_POOL,
                dotted,
                "submit() runs tasks without the submitter's context: managed names "
                "read as absent there",
            )
        elif (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_in_executor"
            and (dotted is None or not dotted.startswith("keyscope.app.legacy."))
        ):
            self.report(
                node,
                FindingKind.RUN_IN_EXECUTOR,
                "run_in_executor",
                "loop.run_in_executor() drops the request's context: managed names "
                "read as absent there",
            )
        elif dotted in PROCESS_STARTERS and not _passes_env(node):
            self.report(
                node,
                FindingKind.SUBPROCESS_ENV,
                dotted,
                "the child inherits the process environment, which never holds the request's key",
            )
        elif self.at_import and dotted in CLIENT_CONSTRUCTORS:
            self.report(
                node,
                FindingKind.MODULE_CLIENT,
                dotted,
                "an SDK client built at import time holds one key for every user",
            )
        elif dotted in GENAI_CLIENTS and (how := self.genai_env_key(node)) is not None:
            self.report(node, FindingKind.SDK_ENV_KEY, dotted, how)
        elif self.at_import and self.is_settings_call(node):
            name = dotted or ast.unparse(node.func)
            self.report(
                node,
                FindingKind.MODULE_SETTINGS,
                name,
                "settings built at import time read the env once, outside any request",
            )
        self.generic_visit(node)

    def genai_env_key(self, call: ast.Call) -> str | None:
        """How a `genai.Client(...)` call leaves its key to an environment read, if it does.

        Without `api_key=` (or with `api_key=None`) the SDK reads GOOGLE_API_KEY or
        GEMINI_API_KEY itself; `api_key=os.getenv("GEMINI_API_KEY")` reads it here. Calls
        with `**kwargs` (the key may be in them) or `vertexai=` (Vertex AI credentials, not
        an API key) are not judged.
        """
        keywords = {k.arg: k.value for k in call.keywords}
        if None in keywords or "vertexai" in keywords:
            return None
        value = keywords.get("api_key")
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            return (
                "genai.Client() without api_key= reads GOOGLE_API_KEY / GEMINI_API_KEY from "
                "the process environment itself"
            )
        name = self.env_read(value)
        if name is not None:
            return f"genai.Client(api_key=...) takes {name} from the environment"
        return None

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if self.dotted(node.value) == ENV_MAPPING:
            name = self.managed_name(node.slice)
            if name is not None and isinstance(node.ctx, ast.Load):
                self.report_read(node, name)
            elif name is not None:
                self.report(
                    node, FindingKind.ENV_WRITE, name, f"os.environ[{name!r}] is written or deleted"
                )
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        managed = self.env_read(node)
        if managed is not None:
            self.report_read(node, managed)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self.dotted(node) in RAW_BYTES_ENV:
            self.report(
                node,
                FindingKind.ENVIRONB,
                f"os.{node.attr}",
                "the bytes environment is not overlaid: it never holds the request's key",
            )
            return  # `os.environb.get` is one finding, not two
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and self.imports.get(node.id) in RAW_BYTES_ENV:
            self.report(
                node,
                FindingKind.ENVIRONB,
                f"os.{node.id}",
                "the bytes environment is not overlaid: it never holds the request's key",
            )

    def report_read(self, node: ast.AST, name: str) -> None:
        if self.at_import:
            self.report(
                node,
                FindingKind.IMPORT_TIME_READ,
                name,
                f"{name} is read at import time, outside any request, and kept",
            )
        else:
            self.report(
                node,
                FindingKind.ENV_READ,
                name,
                f"{name} is read from the environment (served by the legacy overlay)",
            )


_NEW_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _local_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset[str]:
    """Names a function binds itself (arguments, assignments, inner defs), bar its imports."""
    arguments = node.args
    names = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
    names |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    if isinstance(node, ast.Lambda):
        return frozenset(names)
    not_local: set[str] = set()
    pending: list[ast.AST] = list(node.body)
    while pending:
        child = pending.pop()
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(child.name)  # its body is its own scope: not walked
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.add(child.id)
        elif isinstance(child, ast.Import | ast.ImportFrom):
            not_local |= {(a.asname or a.name).split(".")[0] for a in child.names}
        elif isinstance(child, ast.Global | ast.Nonlocal):
            not_local |= set(child.names)
        if not isinstance(child, _NEW_SCOPES):
            pending.extend(ast.iter_child_nodes(child))
    return frozenset(names - not_local)


def _passes_env(call: ast.Call) -> bool:
    # `**kwargs` may carry env=: give it the benefit of the doubt.
    return any(k.arg == "env" or k.arg is None for k in call.keywords)


def _last_name(node: ast.expr) -> str:
    """`Settings` for `Settings`, `config.Settings` and `pydantic_settings.BaseSettings`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


_TEMPLATE_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)  # as os.path.expandvars


def _names_in_template(template: str) -> Iterator[str]:
    """Variable names in a `$NAME` / `${NAME}` template."""
    for match in _TEMPLATE_VARIABLE.finditer(template):
        yield match.group(1).strip("{}")
