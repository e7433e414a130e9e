"""The tests' own rules: helpers are imported from tests/support, fixtures stay in conftests."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _test_sources() -> dict[Path, ast.Module]:
    return {
        file: ast.parse(file.read_text(), filename=str(file))
        for file in sorted(TESTS.rglob("*.py"))
        if "fixtures" not in file.relative_to(TESTS).parts  # scanner input, never imported
    }


def test_no_module_imports_a_conftest() -> None:
    """Conftests hold fixtures only; importable helpers live in tests/support/."""
    found = [
        f"{file.relative_to(TESTS)}:{node.lineno}"
        for file, tree in _test_sources().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom | ast.Import)
        and any(
            name.split(".")[-1] == "conftest"
            for name in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            + [alias.name for alias in node.names]
        )
    ]
    assert found == []


def test_one_anyio_backend_fixture() -> None:
    """`anyio_backend` is defined once, in tests/conftest.py."""
    found = [
        file.relative_to(TESTS).as_posix()
        for file, tree in _test_sources().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "anyio_backend"
    ]
    assert found == ["conftest.py"]


def test_the_suites_build_on_the_shipped_testing_kit() -> None:
    """One builder of test settings and one throw-away PostgreSQL database, both in the
    shipped kit (keyscope.app.testing): this suite and examples/adopter use them instead of
    copies of their own."""
    helpers = [
        *sorted((TESTS / "support").glob("*.py")),
        TESTS.parent / "examples/adopter/tests/conftest.py",
    ]
    found = [
        f"{file.relative_to(TESTS.parent)}: {needle}"
        for file in helpers
        for needle in ("Settings(", "CREATE DATABASE", "DROP DATABASE")
        if needle in file.read_text()
    ]
    assert found == []
