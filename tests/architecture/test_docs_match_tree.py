"""README's layout and docs/architecture.md name only files and folders that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PATH = re.compile(r"`((?:app|providers|migrations|tests|bench|docs)/[\w./]*|containers\.py)")


def _paths_in(text: str) -> set[str]:
    return {match.rstrip("./") or match for match in _PATH.findall(text)}


def _layout_block(readme: str) -> list[str]:
    section = readme.split("## Layout", 1)[1]
    return section.split("```", 2)[1].splitlines()[1:]


def layout_entries(readme: str) -> set[str]:
    """Every file and folder the README's layout tree names, as a path from the root."""
    entries: set[str] = set()
    parents: list[str] = []
    for line in _layout_block(readme):
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip() or indent >= 20:  # blank, or a description's continuation
            continue
        depth = indent // 2
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0].split(" ")
        del parents[depth:]
        for name in names:
            entries.add("/".join([*parents, name.rstrip("/")]))
        if names[-1].endswith("/"):
            parents.append(names[-1].rstrip("/"))
    return entries


def test_layout_tree_names_existing_files() -> None:
    """Each entry of the README's layout tree exists in the repository."""
    entries = layout_entries((ROOT / "README.md").read_text())
    assert "app/legacy/overlay" in entries  # the parser follows the nesting
    assert sorted(e for e in entries if not (ROOT / e).exists()) == []


def test_layout_tree_lists_every_package_and_module_of_app() -> None:
    """Every package under app/ and every module directly in app/ appears in the layout tree."""
    entries = layout_entries((ROOT / "README.md").read_text())
    packages = {
        init.parent.relative_to(ROOT).as_posix() for init in (ROOT / "app").rglob("__init__.py")
    }
    modules = {f"app/{file.name}" for file in (ROOT / "app").glob("*.py")} - {"app/__init__.py"}
    assert sorted((packages | modules) - entries - {"app"}) == []


def test_architecture_doc_names_existing_files() -> None:
    """Each path docs/architecture.md quotes exists."""
    paths = _paths_in((ROOT / "docs" / "architecture.md").read_text())
    assert "app/scope.py" in paths
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
