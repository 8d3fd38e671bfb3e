"""Terminal report (rich): colour on a terminal, plain text when piped."""

from __future__ import annotations

import io
import sys

from rich.console import Console
from rich.markup import escape

from ktriage.model import KINDS, CrashReport, Report

MAX_EVIDENCE = 8  # a terminal report stays readable; nothing is dropped from JSON/Markdown
_CONF_STYLE = {"certain": "bold green", "high": "green", "medium": "yellow", "low": "dim"}


def _hex(v: int | None) -> str:
    return "?" if v is None else f"{v:#x}"


def _crash(con: Console, cr: CrashReport, n: int, total: int) -> None:
    c = cr.crash
    con.rule(f"[bold]Crash {n}/{total}[/]: {escape(c.title)}", align="left")
    kv: list[tuple[str, str]] = [("kind", f"{c.kind} ({KINDS.get(c.kind, '')})")]
    if c.ip:
        where = escape(str(c.ip))
        if c.ip.address is not None:
            where += f"  at {c.ip.address:#x}"
        kv.append(("where", where))
    if c.guilty_frame:
        kv.append(("guilty", c.guilty_frame))
    if c.fault_address is not None:
        kv.append(("fault address", _hex(c.fault_address) + (f" ({c.access})" if c.access else "")))
    k = c.kernel
    kern = ", ".join(x for x in (k.release, k.distro and f"distro {k.distro}", c.arch) if x)
    if kern:
        kv.append(("kernel", escape(kern)))
    if k.hardware:
        kv.append(("hardware", escape(k.hardware)))
    t = c.task
    if t.comm or t.pid is not None:
        kv.append(("task", escape(f"{t.comm} pid {t.pid} cpu {t.cpu}, {c.context} context")))
    if c.taint.flags:
        kv.append(
            (
                "taint",
                escape(
                    " ".join(c.taint.flags.split()) + (": " + "; ".join(c.taint.decoded) if c.taint.decoded else "")
                ),
            )
        )
    if c.panic:
        kv.append(("panic", escape(c.panic)))
    kv.append(("bucket", c.bucket))
    kv.append(("source", escape(f"{c.source.path}:{c.source.first_line}-{c.source.last_line} ({c.source.format})")))
    if c.corrupted:
        kv.append(("[red]incomplete[/]", escape(c.corrupted_reason or "report is truncated or mangled")))
    for key, val in kv:
        con.print(f"  [bold]{key:<14}[/]{val}")
    if c.related_events:
        con.print("  [bold]related events[/]")
        for e in c.related_events:
            con.print(f"    line {e.line}: {escape(e.text)}")
    if cr.findings:
        con.print("  [bold]findings[/]")
        for f in cr.findings:
            style = _CONF_STYLE.get(f.confidence, "")
            con.print(f"    [{style}]{f.confidence:<7}[/] {escape(f.summary)}  [dim]({f.code})[/]")
            for ev in f.evidence[:MAX_EVIDENCE]:
                con.print(f"             [dim]- {escape(ev)}[/]")
            if len(f.evidence) > MAX_EVIDENCE:  # the JSON and Markdown reports carry all of it
                con.print(
                    f"             [dim]- ... {len(f.evidence) - MAX_EVIDENCE} more (--format json or markdown)[/]"
                )
            for line in f.listing:
                con.print(f"             {escape(line)}", highlight=False)
    if cr.known_bugs:
        con.print("  [bold]known bugs[/]")
        for m in cr.known_bugs:
            for line in m.text_lines():
                con.print("    " + escape(line))
    if c.frames:
        con.print("  [bold]call trace[/]")
        for f in c.frames[:40]:
            mark = "  " if f.reliable else "? "
            sect = f" <{f.section}>" if f.section not in ("task",) else ""
            if getattr(f, "interrupted", False):
                sect += " (interrupted here: exception/interrupt entry)"
            con.print(f"    {mark}{escape(str(f))}[dim]{sect}[/]", highlight=False)
        if len(c.frames) > 40:
            con.print(f"    ... {len(c.frames) - 40} more frames")
    if cr.skipped:
        con.print("  [bold]not analyzed[/]")
        for s in cr.skipped:
            con.print(f"    [dim]{s.analyzer}: {escape(s.reason)}[/]")
    con.print()


def render(report: Report, color: bool | None = None, width: int | None = None) -> str:
    buf = io.StringIO()
    tty = sys.stdout.isatty() if color is None else color
    con = Console(
        file=buf,
        force_terminal=tty,
        no_color=not tty,
        width=width or (None if tty else 120),
        highlight=False,
        soft_wrap=not tty,
    )
    total = len(report.crashes)
    for n, cr in enumerate(report.crashes, 1):
        _crash(con, cr, n, total)
    for note in report.notes:
        con.print(f"[yellow]note:[/] {escape(note)}")
    for inp in report.inputs:  # unreadable inputs are reported on stderr by the CLI
        if inp.status == "ok" and inp.crashes == 0:
            con.print(f"{escape(inp.path)}: no kernel crash found ({inp.format})")
        for note in inp.notes:
            con.print(f"[dim]{escape(inp.path)}: {escape(note)}[/]")
    return buf.getvalue()
