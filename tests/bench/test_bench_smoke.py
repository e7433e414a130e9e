"""The benchmark harness still runs end to end (tiny sizes): its figures go in the docs."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.server import process_tree, tree_cpu_seconds

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


def test_server_cpu_counts_the_children_of_a_supervisor() -> None:
    """A `--workers N` supervisor idles while its workers work: their CPU is what counts."""
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while len(process_tree(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(process_tree(parent.pid)) == 2
        while tree_cpu_seconds(parent.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        own = tree_cpu_seconds(parent.pid) - sum(
            tree_cpu_seconds(child) for child in process_tree(parent.pid)[1:]
        )
        assert tree_cpu_seconds(parent.pid) >= 0.3 > own
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.slow
def test_bench_harness_measures_and_checks_every_variant_it_runs(tmp_path: Path) -> None:
    """Two servers, one short round: ratios computed, 0 wrong keys, exactly 1 query per miss;
    then the floor and the warm route under --workers 1 and 2, both workers serving."""
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
        "--workers-rounds=1",
        "--workers-seconds=1",
        "--workers-recycle=16",
        f"--results={tmp_path}",
        timeout=300,
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
    scaled = {v["variant"]: v for v in report["workers"]["variants"]}
    assert set(scaled) == {"bare", "keyscope-warm"}  # keyscope-miss is not scaled
    for one in scaled.values():
        assert one["workers"] == 2
        (single,), (double,) = one["one"]["rounds"], one["many"]["rounds"]
        assert len(single["served_by_worker"]) == 1
        assert single["served"] > 0
        assert len(double["served_by_worker"]) == 2
        assert min(double["served_by_worker"]) > 0
        assert double["server_cpus"] > 0
    for count in ("one", "many"):
        assert scaled["keyscope-warm"][count]["check"]["wrong"] == 0
        assert scaled["keyscope-warm"][count]["check"]["right"] == 20
    assert "`--workers 2` against `--workers 1`" in (tmp_path / "latest.md").read_text()


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
        "depends",
        "principal",
        "user_keys",
        "decrypt",
        "config",
        "client",
        "bench",
        "config-in-place",
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
