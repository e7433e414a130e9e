"""The benchmark harness still runs end to end (tiny sizes): its figures go in the docs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_bench_harness_measures_and_checks_every_variant_it_runs(tmp_path: Path) -> None:
    """Two servers, one short round: ratios computed, 0 wrong keys, exactly 1 query per miss."""
    done = _run(
        "bench",
        "--rounds=1",
        "--seconds=1",
        "--warmup=1",
        "--users=20",
        "--check-samples=20",
        "--no-micro",
        "--loadgen=python",
        "--variants=keyscope-warm,keyscope-miss",
        f"--results={tmp_path}",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    by_name = {v["variant"]: v for v in report["variants"]}
    assert set(by_name) == {"bare", "keyscope-warm", "keyscope-miss"}
    for name in ("keyscope-warm", "keyscope-miss"):
        assert by_name[name]["served"] > 0
        assert by_name[name]["check"]["wrong"] == 0
        assert by_name[name]["check"]["right"] == by_name[name]["check"]["sampled"] == 20
    assert set(by_name["keyscope-miss"]["queries_per_request"]) == {"1"}  # JSON keys
    assert "every user once" in (tmp_path / "latest.md").read_text()
    assert (tmp_path / "performance.svg").read_text().startswith("<svg")
    assert len(by_name["keyscope-warm"]["rps_ratios"]) == 1  # one round, against the floor's


@pytest.mark.slow
def test_breakdown_ladder_answers_every_route() -> None:
    """`python -m bench.breakdown` drives every ladder route to a 200 and prints each row."""
    done = _run("bench.breakdown", "--users=10", "--requests=20", "--rounds=1", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()}
    assert rows == {
        "bare",
        "bare-gemini",
        "none",
        "principal",
        "user_keys",
        "decrypt",
        "config",
        "client",
        "bench",
        "principal-direct",
        "config-model",
        "config-2deps",
        "config-di-async",
    }


@pytest.mark.slow
def test_coherence_cost_compares_both_settings_on_a_warm_cache() -> None:
    """`python -m bench.coherence` runs both apps warm (it asserts so) and prints both rows."""
    done = _run("bench.coherence", "--users=10", "--requests=20", "--rounds=1", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "check alone, auto:" in done.stdout
    rows = {line.split()[0] for line in done.stdout.splitlines()[1:3]}
    assert rows == {"single-process", "auto"}
