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

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / self.served if self.served else float("nan")


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
            "targets": [asdict(t) for t in self.targets()],
            "micro": self.micro,
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
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for t in report.targets():
        verdict = "n/a" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {t.what} | {t.measured} | {verdict} |")
    lines += ["", DOCS_END]
    return "\n".join(lines)


def replace_docs_block(text: str, block: str) -> str:
    """`text` with its generated block replaced (appended when it has none yet)."""
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin == -1 or end == -1:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return text[:begin] + block + text[end + len(DOCS_END) :]
