"""What the pages show that is more than a field: the per-day chart and stored reports as HTML.

Every string that came from a kernel (titles, task names, log lines) goes through escaping: the chart
is built with `markupsafe.escape`, and reports go through `ktriage.render.html.crash_fragment` (the renderer of
`ktriage analyze --format html`, which escapes every text it writes), so `<script>` in a task name is shown as text.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape

from ktriage.fleet.types import BucketDetail, month_start, roll_up, week_start
from ktriage.render.html import crash_fragment
from ktriage.render.json_in import report_from_dict

__all__ = ["day_chart", "kernel_period_table", "report_html", "single_crash_report"]


def report_html(report: dict[str, Any]) -> Markup:
    """A stored `ktriage.report/1` record as `ktriage analyze --format html` shows it: the verdict first, then
    the notable findings with their evidence, the trace and the rest, one <article> per crash."""
    crashes = report_from_dict(report).crashes
    if not crashes:
        return Markup('<p class="muted">no kernel crash in this report</p>')
    return Markup("".join(crash_fragment(cr) for cr in crashes))  # nosec: crash_fragment escapes every text


def single_crash_report(crash: dict[str, Any]) -> dict[str, Any]:
    """A stored crash record (a bucket's representative) wrapped as a one-crash report, for the renderers."""
    return {"schema": "ktriage.report/1", "inputs": [], "crashes": [crash], "notes": []}


def _steps(first: date, last: date, unit: str) -> list[date]:
    """Every day, Monday or 1st of the month from first to last, so periods without crashes show as 0."""
    out, d = [], first
    while d <= last:
        out.append(d)
        if unit == "day":
            d += timedelta(days=1)
        elif unit == "week":
            d += timedelta(days=7)
        else:
            d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return out


LIMITS = {"day": 180, "week": 104, "month": 60}  # bars kept readable: six months, two years, five years


def day_chart(per_day: list[tuple[date, int]], *, unit: str = "day", width: int = 720, height: int = 160) -> Markup:
    """Crashes per day, week or month as an inline SVG bar chart (no script, no external file), periods
    without crashes at 0."""
    if not per_day:
        return Markup(f'<p class="muted">no crashes recorded per {unit}</p>')
    counts = dict(roll_up(per_day, unit))
    days = _steps(min(counts), max(counts), unit)[-LIMITS[unit] :]
    first, last = days[0], days[-1]
    span = len(days)
    top = max(counts.get(d, 0) for d in days) or 1
    left, bottom, pad = 40, 22, 6
    plot_w, plot_h = width - left - pad, height - bottom - pad
    bar_w = plot_w / span
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="crashes per {unit}">',
        f"<title>crashes per {unit}, {escape(first.isoformat())} to {escape(last.isoformat())}</title>",
        f'<line x1="{left}" y1="{pad + plot_h}" x2="{left + plot_w}" y2="{pad + plot_h}" class="axis"/>',
        f'<text x="{left - 4}" y="{pad + 10}" text-anchor="end" class="tick">{top}</text>',
        f'<text x="{left - 4}" y="{pad + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    for i, d in enumerate(days):
        n = counts.get(d, 0)
        if not n:
            continue
        h = max(1.0, plot_h * n / top)
        x = left + i * bar_w
        parts.append(
            f'<rect class="bar" x="{x + 0.5:.1f}" y="{pad + plot_h - h:.1f}" width="{max(1.0, bar_w - 1):.1f}" '
            f'height="{h:.1f}"><title>{escape(d.isoformat())}: {n}</title></rect>'
        )
    parts.append(f'<text x="{left}" y="{height - 6}" class="tick">{escape(first.isoformat())}</text>')
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 6}" text-anchor="end" class="tick">{escape(last.isoformat())}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def kernel_period_table(d: BucketDetail, *, weeks: int = 4, months: int = 3) -> dict[str, Any]:
    """Per release, crashes in each of the last `weeks` weeks and `months` months up to the bucket's last
    crash (FAF's weekly and monthly history per release), for the bucket page's small table."""
    last = d.summary.last_seen.date()
    week_cols = [week_start(last) - timedelta(days=7 * i) for i in range(weeks - 1, -1, -1)]
    month_cols = _steps(month_start(date(last.year - 1, last.month, 1)), month_start(last), "month")[-months:]
    rows = []
    for k in d.per_kernel:
        w = {p.start: p.count for p in d.kernel_periods("week") if p.release == k.release}
        m = {p.start: p.count for p in d.kernel_periods("month") if p.release == k.release}
        rows.append((k.release, [w.get(c, 0) for c in week_cols], [m.get(c, 0) for c in month_cols]))
    return {"weeks": week_cols, "months": month_cols, "rows": rows}
