"""The static scanner finds every marked pattern in the fixture tree, at the exact line."""

import io
import tokenize
from pathlib import Path

from keyscope.app.legacy.scan import Finding, FindingKind, scan_path, scan_source

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY_APP = FIXTURES / "legacy_app"
MARKER = "# expect:"

Site = tuple[str, int, str]  # (file name, line, kind)


def expected_sites(root: Path) -> set[Site]:
    """(file, line, kind) for every `# expect: kind[, kind]` comment under `root`."""
    sites: set[Site] = set()
    for path in root.rglob("*.py"):
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        for token in tokens:
            if token.type == tokenize.COMMENT and token.string.startswith(MARKER):
                for kind in token.string.removeprefix(MARKER).split(","):
                    sites.add((path.name, token.start[0], kind.strip()))
    return sites


def found_sites(findings: list[Finding]) -> set[Site]:
    return {(f.path.name, f.line, f.kind.value) for f in findings}


def test_fixture_tree_findings_match_the_markers_exactly() -> None:
    """Every marked line is reported with its kind, and nothing unmarked is reported."""
    expected = expected_sites(LEGACY_APP)
    assert {kind for _, _, kind in expected} >= {k.value for k in FindingKind} - {"unparsable"}
    assert found_sites(scan_path(FIXTURES)) == expected


def test_unfixable_patterns_at_known_lines() -> None:
    """Spot checks, spelled out: the patterns no overlay can fix, file:line by file:line."""
    found = {(f"{f.path.name}:{f.line}", f.kind.value) for f in scan_path(LEGACY_APP)}
    assert {
        ("cached_settings.py:19", "module-settings"),
        ("cached_settings.py:26", "cached-settings"),
        ("cached_settings.py:31", "cached-settings"),
        ("clients.py:9", "module-client"),
        ("clients.py:13", "genai-configure"),
        ("threads.py:19", "raw-thread"),
        ("threads.py:20", "thread-pool"),
        ("threads.py:23", "run-in-executor"),
        ("threads.py:32", "environb"),
        ("threads.py:33", "subprocess-env"),
        ("env_reads.py:10", "import-time-read"),
    } <= found


def test_findings_are_sorted_and_carry_a_fix() -> None:
    """Findings come sorted by path then line, each message naming its fix."""
    findings = scan_path(FIXTURES)
    assert findings == sorted(findings, key=lambda f: (str(f.path), f.line, f.kind.value, f.name))
    assert all("Fix: " in f.message for f in findings)
    assert str(findings[0]).startswith(f"{findings[0].path}:{findings[0].line}: [")


def test_unparsable_files_become_findings(tmp_path: Path) -> None:
    """Syntax errors, null bytes, absurd nesting: `unparsable` findings; the scan goes on."""
    (tmp_path / "broken.py").write_text("def oops(:\n    pass\n")
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    (tmp_path / "fine.py").write_text("import os\ndef f():\n    return os.getenv('EXA_API_KEY')\n")
    (tmp_path / "deep.py").write_text("x = " + "a + " * 100_000 + "a\n")  # RecursionError
    findings = scan_path(tmp_path)
    assert all("Fix: " in f.message for f in findings)
    assert found_sites(findings) == {
        ("deep.py", 1, "unparsable"),
        ("broken.py", 1, "unparsable"),
        ("nul.py", 1, "unparsable"),
        ("fine.py", 3, "env-read"),
    }


def test_a_single_file_and_hidden_directories(tmp_path: Path) -> None:
    """A file path scans that file; virtualenv and dot directories are skipped."""
    for skipped in (".venv", "venv", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "lib.py").write_text("import os\nos.getenv('EXA_API_KEY')\n")
    assert scan_path(tmp_path) == []
    single = scan_path(LEGACY_APP / "threads.py")
    assert {f.path.name for f in single} == {"threads.py"}


def test_names_resolve_through_imports_only() -> None:
    """A local `getenv` or an attribute named like an env read is not a finding."""
    source = (
        "class Config:\n"
        "    environ = {}\n"
        "def getenv(name):\n"
        "    return name\n"
        "def f(cfg):\n"
        "    return getenv('GEMINI_API_KEY'), cfg.environ['EXA_API_KEY']\n"
    )
    assert scan_source(source, Path("local.py")) == []


def test_cli_scan_prints_file_line_for_each_finding_and_exits_1() -> None:
    """`keyscope legacy scan PATH` prints one `file:line` row per finding, exit 1 when any."""
    from typer.testing import CliRunner

    from keyscope.app.cli import cli

    result = CliRunner().invoke(cli, ["legacy", "scan", str(LEGACY_APP)])
    assert result.exit_code == 1
    rows = {line.split(": [")[0] for line in result.stdout.splitlines() if ": [" in line}
    expected = {f"{LEGACY_APP / name}:{line}" for name, line, _ in expected_sites(LEGACY_APP)}
    assert rows == expected


def test_cli_scan_of_clean_code_exits_0(tmp_path: Path) -> None:
    """Code that reads no managed name from the environment: no rows, exit 0."""
    from typer.testing import CliRunner

    from keyscope.app.cli import cli

    (tmp_path / "clean.py").write_text("import os\nHOME = os.getenv('HOME')\n")
    result = CliRunner().invoke(cli, ["legacy", "scan", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert ": [" not in result.stdout


def test_genai_clients_leaving_the_key_to_the_environment() -> None:
    """`genai.Client(...)` without a passed key is reported at file:line with its fix."""
    path = LEGACY_APP / "genai_env.py"
    findings = [f for f in scan_path(path) if f.kind is FindingKind.SDK_ENV_KEY]
    lines = path.read_text().splitlines()
    reported = {f.line for f in findings}
    expected = {n for n, text in enumerate(lines, start=1) if "sdk-env-key" in text}
    assert reported == expected
    first = str(findings[0])
    assert first.startswith(f"{path}:{findings[0].line}: [sdk-env-key] google.genai.Client:")
    assert "api_key=" in first
    assert "Fix: pass the requesting user's key explicitly" in first
