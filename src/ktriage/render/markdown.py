"""Markdown report: for tickets, postmortems and chat."""

from __future__ import annotations

from ktriage.model import KINDS, Report
from ktriage.render.sections import grouped
from ktriage.verdict import compose


def _code(s: object) -> str:
    return "`" + str(s).replace("`", "'") + "`"


def render(report: Report) -> str:
    out: list[str] = ["# ktriage report", ""]
    for n, cr in enumerate(report.crashes, 1):
        c = cr.crash
        out += [f"## {n}. {c.title}", ""]
        out += ["**Verdict**", ""] + [f"> {line}  " for line in compose(cr).lines] + [""]
        rows = [("kind", f"{c.kind} — {KINDS.get(c.kind, '')}")]
        if c.ip:
            rows.append(("where", _code(c.ip)))
        if c.guilty_frame:
            rows.append(("guilty frame", _code(c.guilty_frame)))
        if c.fault_address is not None:
            rows.append(("fault address", _code(f"{c.fault_address:#x}") + (f" ({c.access})" if c.access else "")))
        if c.kernel.release:
            rows.append(("kernel", _code(c.kernel.release) + (f" ({c.kernel.distro})" if c.kernel.distro else "")))
        if c.arch:
            rows.append(("arch", c.arch))
        if c.task.comm or c.task.pid is not None:
            rows.append(("task", f"{_code(c.task.comm)} pid {c.task.pid} cpu {c.task.cpu}, {c.context} context"))
        if c.taint.flags:
            rows.append(
                ("taint", _code(c.taint.flags) + ("; " + "; ".join(c.taint.decoded) if c.taint.decoded else ""))
            )
        if c.panic:
            rows.append(("panic", _code(c.panic)))
        rows.append(("bucket", _code(c.bucket)))
        rows.append(("source", _code(f"{c.source.path}:{c.source.first_line}-{c.source.last_line}")))
        if c.corrupted:
            rows.append(("incomplete", c.corrupted_reason or "report truncated or mangled"))
        out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]
        if c.related_events:
            out += ["**Related events**", ""] + [f"- line {e.line}: {_code(e.text)}" for e in c.related_events] + [""]
        for title, fs in grouped(cr.findings):
            out += [f"### {title}", ""]
            for f in fs:
                out.append(f"- **{f.confidence}** {f.summary} ({_code(f.code)})")
                out += [f"  - {ev}" for ev in f.evidence]
                if f.listing:
                    out += ["", "  ```"] + [f"  {l}" for l in f.listing] + ["  ```"]
            out.append("")
        if cr.known_bugs:
            out += ["### Known bugs", ""]
            for m in cr.known_bugs:
                out += m.markdown_lines() + [""]
        if c.frames:
            out += ["### Call trace", "", "```"]
            out += [
                ("  " if f.reliable else "? ") + str(f) + ("  (interrupted here)" if f.interrupted else "")
                for f in c.frames
            ]
            out += ["```", ""]
        if cr.skipped:
            out += ["### Not analyzed", ""] + [f"- {s.analyzer}: {s.reason}" for s in cr.skipped] + [""]
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    out += ["## Inputs", ""]
    for i in report.inputs:
        line = f"- {_code(i.path)}: {i.format}, {i.crashes} crash(es)"
        if i.error:
            line += f" — **{i.error}**"
        out.append(line)
        out += [f"  - {n}" for n in i.notes]
    return "\n".join(out) + "\n"
