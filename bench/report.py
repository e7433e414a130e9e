"""Summaries of the measured rounds, the targets, and the markdown/JSON output.

Every ratio is against `bare` (the floor: a FastAPI endpoint returning a hard-coded key) of
the same run; the spread is the range of the per-round ratios, each round against the floor's
round of the same number (rounds alternate between variants)."""

import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import LoadResult
from bench.wrongkey import CheckResult


@dataclass
class Round:
    variant: str
    number: int
    load: LoadResult
    served: int  # bench requests the server counted during the period
    queries: int  # SQL statements the server sent during the period
    cpu_seconds: float
    queries_per_request: dict[int, int]  # statements caused by one request -> requests
    check: CheckResult | None
    # The multi-worker section's (bench/workers.py): where the machine's CPUs went.
    wall_seconds: float = 0.0
    loadgen_cpu_seconds: float = 0.0
    machine_busy_seconds: float = 0.0  # every process on the machine, ours or not
    served_by_worker: list[int] = field(default_factory=list)  # largest first

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / self.served if self.served else float("nan")

    @property
    def server_cpus(self) -> float:
        """CPUs the server's process tree kept busy on average during the period."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else float("nan")

    @property
    def loadgen_cpus(self) -> float:
        return self.loadgen_cpu_seconds / self.wall_seconds if self.wall_seconds else float("nan")

    @property
    def machine_cpus(self) -> float:
        return self.machine_busy_seconds / self.wall_seconds if self.wall_seconds else float("nan")

    @property
    def other_cpus(self) -> float:
        """Everything else the machine ran meanwhile: the harness, the database, other jobs."""
        return self.machine_cpus - self.server_cpus - self.loadgen_cpus


@dataclass
class Summary:
    variant: str
    label: str
    rounds: list[Round]
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_us: float = 0.0
    rps_ratio: float = float("nan")
    cpu_ratio: float = float("nan")
    served: int = 0
    queries: int = 0
    errors: int = 0
    check: CheckResult | None = None
    histogram: dict[int, int] = field(default_factory=dict)
    rps_ratios: list[float] = field(default_factory=list)  # per round, against bare's round
    cpu_ratios: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, variant: str, label: str, rounds: list[Round]) -> "Summary":
        summary = cls(variant, label, rounds)
        summary.rps = statistics.median(r.load.rps for r in rounds)
        summary.p50_ms = statistics.median(r.load.p50_ms for r in rounds)
        summary.p99_ms = statistics.median(r.load.p99_ms for r in rounds)
        summary.cpu_us = statistics.median(r.cpu_us_per_request for r in rounds)
        summary.served = sum(r.served for r in rounds)
        summary.queries = sum(r.queries for r in rounds)
        summary.errors = sum(r.load.errors for r in rounds)
        for r in rounds:
            for queries, requests in r.queries_per_request.items():
                summary.histogram[queries] = summary.histogram.get(queries, 0) + requests
        checks = [r.check for r in rounds if r.check is not None]
        if checks:
            summary.check = CheckResult()
            for one in checks:
                summary.check.add(one)
        return summary

    @property
    def queries_per_request(self) -> float:
        return self.queries / self.served if self.served else float("nan")


@dataclass
class Scaling:
    """One design served by `uvicorn --workers 1` and by `--workers N`, rounds alternating
    (bench/workers.py); ratios are N workers against 1, round by round."""

    variant: str
    label: str
    workers: int
    one: Summary
    many: Summary

    @property
    def rps_ratio(self) -> float:
        return self.many.rps / self.one.rps if self.one.rps else float("nan")

    @property
    def rps_ratios(self) -> list[float]:
        return list(self._gains().values())

    @property
    def cpu_ratio(self) -> float:
        return self.many.cpu_us / self.one.cpu_us if self.one.cpu_us else float("nan")

    def _gains(self) -> dict[int, float]:
        """N workers' req/s ÷ 1 worker's, by round number."""
        ones = {r.number: r.load.rps for r in self.one.rounds}
        return {
            m.number: m.load.rps / ones[m.number] for m in self.many.rounds if ones.get(m.number)
        }

    def against(self, floor: "Scaling") -> tuple[float, list[float]]:
        """This design's N-worker gain divided by the floor's (1.0: scales as FastAPI alone
        does), overall and per round."""
        theirs = floor._gains()
        rounds = [g / theirs[n] for n, g in self._gains().items() if theirs.get(n)]
        return self.rps_ratio / floor.rps_ratio, rounds


def _median(values: list[float]) -> float:
    values = [v for v in values if v == v]  # not NaN
    return statistics.median(values) if values else float("nan")


def _cpus(summary: Summary, what: str) -> str:
    return f"{_median([getattr(r, what) for r in summary.rounds]):.2f}"


def _split(summary: Summary) -> str:
    """Requests per worker, largest share first, over all rounds: "52/48 %"."""
    totals: list[int] = []
    for r in summary.rounds:
        for i, n in enumerate(r.served_by_worker):
            if i == len(totals):
                totals.append(0)
            totals[i] += n
    whole = sum(totals)
    if len(totals) < 2 or not whole:
        return "—"
    return "/".join(f"{100 * n / whole:.0f}" for n in totals) + " %"


@dataclass
class Target:
    what: str
    measured: str
    met: bool | None  # None: could not be measured


@dataclass
class Report:
    machine: dict[str, str]
    summaries: list[Summary]
    micro: list[dict[str, Any]]
    unavailable: dict[str, str] = field(default_factory=dict)
    workers: list[Scaling] = field(default_factory=list)  # the multi-worker section
    workers_info: dict[str, str] = field(default_factory=dict)

    def scaling_floor(self) -> Scaling | None:
        return next((s for s in self.workers if s.variant == "bare"), None)

    def by_name(self, name: str) -> Summary | None:
        return next((s for s in self.summaries if s.variant == name), None)

    def compute_ratios(self) -> None:
        bare = self.by_name("bare")
        if bare is None:
            return
        floor = {r.number: r for r in bare.rounds}
        for summary in self.summaries:
            summary.rps_ratio = summary.rps / bare.rps
            summary.cpu_ratio = summary.cpu_us / bare.cpu_us
            paired = [(r, floor[r.number]) for r in summary.rounds if r.number in floor]
            summary.rps_ratios = [r.load.rps / f.load.rps for r, f in paired if f.load.rps]
            summary.cpu_ratios = [
                r.cpu_us_per_request / f.cpu_us_per_request
                for r, f in paired
                if f.cpu_us_per_request
            ]

    def targets(self) -> list[Target]:
        targets: list[Target] = []
        warm = self.by_name("keyscope-warm")
        injected, legacy = self.by_name("keyscope-gemini"), self.by_name("keyscope-legacy")
        if warm is not None:
            targets.append(
                Target(
                    "warm config ≥ 0.70x the floor's req/s (goal 0.80x)",
                    f"{warm.rps_ratio:.2f}x ({_spread(warm.rps_ratios)})",
                    warm.rps_ratio >= 0.70,
                )
            )
            targets.append(
                Target(
                    "warm config ≤ 1.5x the floor's CPU/request (goal 1.25x)",
                    f"{warm.cpu_ratio:.2f}x ({_spread(warm.cpu_ratios)})",
                    warm.cpu_ratio <= 1.5,
                )
            )
        if injected is not None and legacy is not None:
            gap = legacy.rps / injected.rps - 1
            cpu_gap = legacy.cpu_us / injected.cpu_us - 1
            targets.append(
                Target(
                    "legacy route within 10% of the injected Gemini route (req/s)",
                    f"{gap:+.1%} req/s, {cpu_gap:+.1%} CPU/req",
                    abs(gap) <= 0.10,
                )
            )
        else:
            reason = self.unavailable.get("keyscope-legacy", "not run")
            targets.append(Target("legacy route within 10% of the injected route", reason, None))
        for name in ("keyscope-miss", "keyscope-pg-miss"):
            one = self.by_name(name)
            if one is not None:
                targets.append(
                    Target(
                        f"{name}: exactly 1 query/request",
                        f"{_histogram(one.histogram)} (counted per request)",
                        set(one.histogram) == {1},
                    )
                )
        for name in ("keyscope-miss", "keyscope-pg-miss"):
            one, hit = self.by_name(name), self.by_name(name.replace("miss", "warm"))
            if one is not None and hit is not None and one.served:
                extra = one.cpu_us - hit.cpu_us
                targets.append(
                    Target(
                        f"{name}: cost of the one query per request",
                        f"+{extra:.0f} µs CPU/request over the warm path",
                        None,
                    )
                )
        wrong = {
            s.variant: s.check.wrong
            for s in self.summaries
            if s.check is not None and s.variant != "seed"
        }
        sampled = sum(
            s.check.sampled for s in self.summaries if s.check is not None and s.variant != "seed"
        )
        targets.append(
            Target(
                "0 wrong keys (all but seed)",
                f"{sum(wrong.values())} in {sampled} sampled",
                not any(wrong.values()),
            )
        )
        floor = self.scaling_floor()
        for scaling in self.workers:
            if floor is None or scaling is floor:
                continue
            relative, rounds = scaling.against(floor)
            targets.append(
                Target(
                    f"{scaling.variant}: --workers {scaling.workers} ÷ --workers 1 req/s, "
                    "against the floor's",
                    f"{scaling.rps_ratio:.2f}x against the floor's {floor.rps_ratio:.2f}x: "
                    f"{relative:.2f} ({_spread(rounds)})",
                    None,
                )
            )
        if self.workers:
            checks = [s.check for w in self.workers for s in (w.one, w.many) if s.check is not None]
            targets.append(
                Target(
                    f"0 wrong keys under --workers {self.workers[0].workers}",
                    f"{sum(c.wrong for c in checks)} in {sum(c.sampled for c in checks)} sampled",
                    not any(c.wrong for c in checks),
                )
            )
        build = next((m for m in self.micro if m["name"].startswith("GeminiClient(")), None)
        if build is not None:
            targets.append(
                Target(
                    "Gemini client build ≤ 0.2 ms (shared pools)",
                    f"{build['us']:.0f} µs",
                    build["us"] <= 200,
                )
            )
        return targets

    def markdown(self) -> str:
        lines = ["# keyscope bench: latest run", ""]
        lines += [f"- {k}: {v}" for k, v in self.machine.items()]
        lines += ["", "## Side by side (median of rounds; ratios against `bare` of this run)", ""]
        lines += [
            "| variant | req/s | x bare (rounds) | p50 ms | p99 ms | CPU µs/req "
            "| x bare CPU (rounds) | queries/req | errors | wrong keys / sampled |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for s in self.summaries:
            check = s.check
            wrong = (
                "—"
                if check is None
                else f"{check.wrong} / {check.sampled}"
                + (f" ({_breakdown(check)})" if check.wrong or check.failed else "")
            )
            lines.append(
                f"| {s.variant} | {s.rps:,.0f} | {s.rps_ratio:.2f} ({_spread(s.rps_ratios)}) "
                f"| {s.p50_ms:.2f} | {s.p99_ms:.2f} | {s.cpu_us:.0f} "
                f"| {s.cpu_ratio:.2f} ({_spread(s.cpu_ratios)}) | "
                f"{_per_request(s)} | {s.errors} | {wrong} |"
            )
        for name, reason in self.unavailable.items():
            lines.append(f"| {name} | not run: {reason} | | | | | | | | |")
        lines += ["", "Variants:", ""]
        lines += [f"- `{s.variant}`: {s.label}" for s in self.summaries]
        lines += self._workers_markdown()
        lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
        for t in self.targets():
            verdict = "n/a" if t.met is None else ("yes" if t.met else "**no**")
            lines.append(f"| {t.what} | {t.measured} | {verdict} |")
        if self.micro:
            lines += [
                "",
                "## Step costs (in-process, timeit best of 5)",
                "",
                "| step | µs per call | note |",
                "|---|---:|---|",
            ]
            lines += [f"| {m['name']} | {m['us']:.2f} | {m['note']} |" for m in self.micro]
        lines += [
            "",
            "## Rounds",
            "",
            "| round | variant | req/s | p99 ms | CPU µs/req | served | queries | errors |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sorted((r for s in self.summaries for r in s.rounds), key=lambda r: r.number):
            lines.append(
                f"| {r.number} | {r.variant} | {r.load.rps:,.0f} | {r.load.p99_ms:.2f} |"
                f" {r.cpu_us_per_request:.0f} | {r.served} | {r.queries} |"
                f" {r.load.errors} |"
            )
        return "\n".join(lines) + "\n"

    def _workers_markdown(self) -> list[str]:
        if not self.workers:
            return []
        n = self.workers[0].workers
        lines = [
            "",
            f"## `--workers {n}` against `--workers 1` (median of rounds; nothing pinned: "
            "servers and load generator share the CPUs)",
            "",
        ]
        lines += [f"- {k}: {v}" for k, v in self.workers_info.items()]
        lines += [
            "",
            "| variant | workers | req/s | x 1 worker (rounds) | p50 ms | p99 ms | CPU µs/req "
            "| server CPUs | load generator CPUs | other CPU use | requests per worker "
            "| queries/req | errors | wrong keys / sampled |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for w in self.workers:
            for count, s in ((1, w.one), (w.workers, w.many)):
                gain = "1" if count == 1 else f"{w.rps_ratio:.2f} ({_spread(w.rps_ratios)})"
                wrong = "—" if s.check is None else f"{s.check.wrong} / {s.check.sampled}"
                lines.append(
                    f"| {w.variant} | {count} | {s.rps:,.0f} | {gain} | {s.p50_ms:.2f} "
                    f"| {s.p99_ms:.2f} | {s.cpu_us:.0f} | {_cpus(s, 'server_cpus')} "
                    f"| {_cpus(s, 'loadgen_cpus')} | {_cpus(s, 'other_cpus')} | {_split(s)} "
                    f"| {_per_request(s)} | {s.errors} | {wrong} |"
                )
        lines += [
            "",
            "| round | variant | workers | req/s | p99 ms | CPU µs/req | server CPUs "
            "| load generator CPUs | other CPU use | served per worker |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for w in self.workers:
            for count, s in ((1, w.one), (w.workers, w.many)):
                for r in s.rounds:
                    lines.append(
                        f"| {r.number} | {w.variant} | {count} | {r.load.rps:,.0f} "
                        f"| {r.load.p99_ms:.2f} | {r.cpu_us_per_request:.0f} "
                        f"| {r.server_cpus:.2f} | {r.loadgen_cpus:.2f} | {r.other_cpus:.2f} "
                        f"| {'/'.join(map(str, r.served_by_worker))} |"
                    )
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "unavailable": self.unavailable,
            "variants": [
                {
                    "variant": s.variant,
                    "label": s.label,
                    "rps": s.rps,
                    "rps_ratio": s.rps_ratio,
                    "p50_ms": s.p50_ms,
                    "p99_ms": s.p99_ms,
                    "cpu_us_per_request": s.cpu_us,
                    "cpu_ratio": s.cpu_ratio,
                    "rps_ratios": s.rps_ratios,
                    "cpu_ratios": s.cpu_ratios,
                    "served": s.served,
                    "queries": s.queries,
                    "queries_per_request": s.histogram,
                    "errors": s.errors,
                    "check": None
                    if s.check is None
                    else {**asdict(s.check), "wrong": s.check.wrong},
                    "rounds": [
                        {
                            "round": r.number,
                            "load": {**asdict(r.load), "rps": r.load.rps},
                            "served": r.served,
                            "queries": r.queries,
                            "cpu_seconds": r.cpu_seconds,
                            "cpu_us_per_request": r.cpu_us_per_request,
                        }
                        for r in s.rounds
                    ],
                }
                for s in self.summaries
            ],
            "workers": {
                "info": self.workers_info,
                "variants": [
                    {
                        "variant": w.variant,
                        "workers": w.workers,
                        "rps_ratio": w.rps_ratio,
                        "rps_ratios": w.rps_ratios,
                        "cpu_ratio": w.cpu_ratio,
                        "one": _summary_json(w.one),
                        "many": _summary_json(w.many),
                    }
                    for w in self.workers
                ],
            },
            "targets": [asdict(t) for t in self.targets()],
            "micro": self.micro,
        }


def _summary_json(s: Summary) -> dict[str, Any]:
    return {
        "rps": s.rps,
        "p50_ms": s.p50_ms,
        "p99_ms": s.p99_ms,
        "cpu_us_per_request": s.cpu_us,
        "served": s.served,
        "queries": s.queries,
        "queries_per_request": s.histogram,
        "errors": s.errors,
        "check": None if s.check is None else {**asdict(s.check), "wrong": s.check.wrong},
        "rounds": [
            {
                "round": r.number,
                "load": {**asdict(r.load), "rps": r.load.rps},
                "served": r.served,
                "served_by_worker": r.served_by_worker,
                "cpu_seconds": r.cpu_seconds,
                "cpu_us_per_request": r.cpu_us_per_request,
                "server_cpus": r.server_cpus,
                "loadgen_cpus": r.loadgen_cpus,
                "machine_cpus": r.machine_cpus,
                "other_cpus": r.other_cpus,
            }
            for r in s.rounds
        ],
    }


def _spread(values: list[float]) -> str:
    """The range of per-round ratios, "0.71-0.78"."""
    return f"{min(values):.2f}-{max(values):.2f}" if values else "—"


def _per_request(summary: Summary) -> str:
    """Queries per request from the per-request histogram: "1" when every request made one."""
    if len(summary.histogram) == 1:
        return str(next(iter(summary.histogram)))
    return f"{summary.queries_per_request:.3f}" if summary.histogram else "—"


def _histogram(histogram: dict[int, int]) -> str:
    """`{1: 3000}` as "3,000 requests with 1 query"; several counts joined."""
    parts = [
        f"{n:,} requests with {q} quer{'y' if q == 1 else 'ies'}" for q, n in histogram.items()
    ]
    return ", ".join(parts) or "no requests counted"


def _breakdown(check: CheckResult) -> str:
    parts = {
        "other user's": check.other_user,
        "operator's": check.operator,
        "none": check.no_key,
        "wrong user": check.wrong_user,
        "failed": check.failed,
    }
    return ", ".join(f"{n} {k}" for k, n in parts.items() if n)


DOCS_BEGIN = "<!-- bench:begin (written by `make bench`; edit outside these markers) -->"
DOCS_END = "<!-- bench:end -->"


def docs_block(report: Report, image: str) -> str:
    """The generated part of docs/performance.md: the run, the table, the chart, the targets."""
    m = report.machine
    # Where the raw results went is this machine's business, not the page's.
    command = re.sub(r" --results[= ]\S+", "", m.get("command", "python -m bench"))
    lines = [
        DOCS_BEGIN,
        "",
        f"Produced by `{command}` on {m.get('date', '?')} at "
        f"commit {m.get('commit', '?')} ({m.get('machine', '?')}; {m.get('rounds', '')}; "
        f"{m.get('load generator', '')}; {m.get('server', '')}).",
        "",
        f"![req/s and CPU per request against the floor, per variant]({image})",
        "",
        "| variant | req/s ÷ floor | rounds | CPU/request ÷ floor | rounds | CPU µs/request "
        "| p99 ms | queries/request | wrong keys / sampled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in report.summaries:
        wrong = "—" if s.check is None else f"{s.check.wrong} / {s.check.sampled}"
        lines.append(
            f"| `{s.variant}` | {s.rps_ratio:.2f} | {_spread(s.rps_ratios)} | {s.cpu_ratio:.2f} "
            f"| {_spread(s.cpu_ratios)} | {s.cpu_us:.0f} | {s.p99_ms:.2f} | {_per_request(s)} "
            f"| {wrong} |"
        )
    for name, reason in report.unavailable.items():
        lines.append(f"| `{name}` | not run: {reason} | | | | | | | |")
    lines += ["", "Variants:", ""]
    lines += [f"- `{s.variant}`: {s.label}" for s in report.summaries]
    lines += _workers_block(report)
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for t in report.targets():
        verdict = "n/a" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {t.what} | {t.measured} | {verdict} |")
    lines += ["", DOCS_END]
    return "\n".join(lines)


def _workers_block(report: Report) -> list[str]:
    """The multi-worker section of the generated block (nothing when it did not run)."""
    if not report.workers:
        return []
    info, n = report.workers_info, report.workers[0].workers
    floor = report.scaling_floor()
    lines = [
        "",
        f"`--workers {n}` against `--workers 1`, same run, after the rows above "
        f"({info.get('rounds', '')}; {info.get('pinning', '')}; CPU summed over each server's "
        "process tree, supervisor and workers):",
        "",
        "| variant | workers | req/s | ÷ 1 worker | rounds | gain ÷ floor's gain | rounds "
        "| CPU µs/request | p99 ms | server CPUs | load generator CPUs | other CPU use "
        "| requests per worker | queries/request | wrong keys / sampled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w in report.workers:
        relative, rounds = (
            w.against(floor) if floor is not None and w is not floor else (float("nan"), [])
        )
        for count, s in ((1, w.one), (w.workers, w.many)):
            wrong = "—" if s.check is None else f"{s.check.wrong} / {s.check.sampled}"
            many = count != 1
            lines.append(
                f"| `{w.variant}` | {count} | {s.rps:,.0f} "
                f"| {f'{w.rps_ratio:.2f}' if many else '1'} "
                f"| {_spread(w.rps_ratios) if many else ''} "
                f"| {f'{relative:.2f}' if many and rounds else ''} "
                f"| {_spread(rounds) if many and rounds else ''} "
                f"| {s.cpu_us:.0f} | {s.p99_ms:.2f} | {_cpus(s, 'server_cpus')} "
                f"| {_cpus(s, 'loadgen_cpus')} | {_cpus(s, 'other_cpus')} | {_split(s)} "
                f"| {_per_request(s)} | {wrong} |"
            )
    return lines


def replace_docs_block(text: str, block: str) -> str:
    """`text` with its generated block replaced (appended when it has none yet)."""
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin == -1 or end == -1:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return text[:begin] + block + text[end + len(DOCS_END) :]
