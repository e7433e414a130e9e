"""The distribution installs exactly one import package, `keyscope`, over the root folders."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ROOTS = ("app", "providers", "migrations")


def _declared_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages: list[str] = config["tool"]["setuptools"]["packages"]
    return packages


def _packages_in_tree() -> list[str]:
    found = ["keyscope"]
    for top in SHIPPED_ROOTS:
        for init in sorted((ROOT / top).rglob("__init__.py")):
            relative = init.parent.relative_to(ROOT)
            found.append(".".join(("keyscope", *relative.parts)))
    return found


def test_package_list_matches_the_tree() -> None:
    """Every package folder under app/, providers/, migrations/ is declared, and nothing else."""
    assert sorted(_declared_packages()) == sorted(_packages_in_tree())


def test_every_internal_import_is_namespaced() -> None:
    """No module imports the bare folder names that would collide with a host app's `app`."""
    offenders = []
    for top in (*SHIPPED_ROOTS, "tests", "bench"):
        for path in (ROOT / top).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                stripped = line.strip()
                for bare in ("app", "providers", "containers", "migrations"):
                    if stripped.startswith((f"from {bare}.", f"from {bare} ", f"import {bare}")):
                        offenders.append(f"{path.relative_to(ROOT)}:{number}: {stripped}")
    offenders += [
        f"containers.py:{n}: {line.strip()}"
        for n, line in enumerate((ROOT / "containers.py").read_text().splitlines(), 1)
        if line.strip().startswith(("from app", "from providers", "import app"))
    ]
    assert offenders == []


@pytest.mark.slow
def test_wheel_has_one_top_level_name(tmp_path: Path) -> None:
    """`pip wheel` of the checkout yields a wheel whose only top-level import name is keyscope."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("keyscope-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {
        name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")
    }
    assert tops == {"keyscope"}
    assert "keyscope/containers.py" in names
    assert "keyscope/migrations/script.py.mako" in names
    assert "keyscope/py.typed" in names
    assert not any(name.startswith(("keyscope/tests/", "keyscope/bench/")) for name in names)
