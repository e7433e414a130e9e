"""keyscope is installed as a wheel: one top-level package, nothing grafted onto `app`, and
importing the project writes nothing into the working directory."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import app
import keyscope.containers

PROJECT = Path(__file__).resolve().parents[1]


def test_keyscope_is_a_regular_install() -> None:
    """keyscope comes from site-packages (not the checkout), and `app` is this project's."""
    assert "site-packages" in str(Path(keyscope.containers.__file__))
    assert Path(app.__file__).resolve().parent == PROJECT / "app"
    files = importlib.metadata.files("keyscope") or []
    top = {str(f).split("/")[0] for f in files if not str(f).split("/")[0].endswith(".dist-info")}
    top.discard("..")  # the console script lives in bin/
    assert top == {"keyscope"}
    direct_url = importlib.metadata.distribution("keyscope").read_text("direct_url.json") or ""
    assert '"editable": true' not in direct_url


def test_importing_the_app_writes_nothing_into_the_cwd(tmp_path: Path) -> None:
    """`import app.asgi` in local mode puts the dev secrets in the state dir, never the cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSCOPE_")}
    env.update(XDG_STATE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(PROJECT))
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "import app.asgi"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []
    assert (tmp_path / "xdg" / "keyscope" / "dev-master-keys").exists()
