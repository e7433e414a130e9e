"""The bench's chart: one SVG, written by hand from the report (no plotting dependency).

Two panels share the variant rows: requests/s and server CPU per request, each as a ratio to
the floor (`bare`) of the same run; a bar is the median of the rounds, its whisker the range
of the per-round ratios. Dashed lines mark the targets (0.70x req/s, 1.5x CPU).
"""

from html import escape

from bench.report import Summary

ROW = 22
LABEL_W = 150
PANEL_W = 300
GAP = 40
TOP = 46
FONT = "font-family='sans-serif' font-size='11'"


def _panel(
    x0: float,
    title: str,
    summaries: list[Summary],
    value: str,
    spread: str,
    scale_max: float,
    step: float,
    target: float,
    colour: str,
) -> list[str]:
    def px(v: float) -> float:
        return x0 + min(v, scale_max) / scale_max * PANEL_W

    out = [f"<text x='{x0}' y='{TOP - 26}' {FONT} font-weight='bold'>{escape(title)}</text>"]
    height = ROW * len(summaries)
    for k in range(round(scale_max / step) + 1):
        tick = k * step
        x = px(tick)
        out.append(
            f"<line x1='{x:.1f}' y1='{TOP - 6}' x2='{x:.1f}' y2='{TOP + height}' stroke='#ddd'/>"
        )
        out.append(f"<text x='{x:.1f}' y='{TOP - 10}' {FONT} text-anchor='middle'>{tick:g}x</text>")
    for i, s in enumerate(summaries):
        y = TOP + i * ROW
        median = getattr(s, value)
        rounds = getattr(s, spread)
        if median == median:  # not NaN
            out.append(
                f"<rect x='{x0}' y='{y + 4}' width='{px(median) - x0:.1f}' height='{ROW - 8}' "
                f"fill='{colour}'/>"
            )
            out.append(
                f"<text x='{px(median) + 4:.1f}' y='{y + ROW - 7}' {FONT}>{median:.2f}</text>"
            )
        if rounds:
            lo, hi = px(min(rounds)), px(max(rounds))
            mid = y + ROW / 2
            out.append(f"<line x1='{lo:.1f}' y1='{mid}' x2='{hi:.1f}' y2='{mid}' stroke='#333'/>")
            for x in (lo, hi):
                out.append(
                    f"<line x1='{x:.1f}' y1='{mid - 4}' x2='{x:.1f}' y2='{mid + 4}' stroke='#333'/>"
                )
    tx = px(target)
    out.append(
        f"<line x1='{tx:.1f}' y1='{TOP - 6}' x2='{tx:.1f}' y2='{TOP + height}' "
        "stroke='#c00' stroke-dasharray='4 3'/>"
    )
    return out


def svg(summaries: list[Summary], caption: str) -> str:
    """The chart for `summaries` (ratios computed), with `caption` under it."""
    height = TOP + ROW * len(summaries) + 34
    cpu_max = max([2.0] + [s.cpu_ratio for s in summaries if s.cpu_ratio == s.cpu_ratio])
    cpu_max = float(min(int(cpu_max) + 1, 8))
    width = LABEL_W + 2 * PANEL_W + GAP + 60
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
    ]
    for i, s in enumerate(summaries):
        y = TOP + i * ROW + ROW - 7
        out.append(
            f"<text x='{LABEL_W - 8}' y='{y}' {FONT} text-anchor='end'>{escape(s.variant)}</text>"
        )
    out += _panel(
        LABEL_W,
        "req/s ÷ floor (target ≥ 0.70)",
        summaries,
        "rps_ratio",
        "rps_ratios",
        1.2,
        0.2,
        0.70,
        "#4a7ebb",
    )
    out += _panel(
        LABEL_W + PANEL_W + GAP,
        "server CPU per request ÷ floor (target ≤ 1.5)",
        summaries,
        "cpu_ratio",
        "cpu_ratios",
        cpu_max,
        1.0,
        1.5,
        "#e0a030",
    )
    out.append(f"<text x='10' y='{height - 12}' {FONT} fill='#555'>{escape(caption)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
