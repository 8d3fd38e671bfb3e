"""Terminal report (rich): colour on a terminal, plain text when piped."""

from __future__ import annotations

import io
import sys

from rich.console import Console
from rich.markup import escape

from ktriage.model import KINDS, Crash, CrashReport, Finding, Report
from ktriage.render.sections import grouped, notable_evidence, short_listing, trace_lines
from ktriage.verdict import compose, unlock_line

MAX_EVIDENCE = 8  # verbose: a terminal report stays readable; nothing is dropped from JSON/Markdown
SHORT_EVIDENCE = 4  # default: the first lines of each finding's evidence
MAX_EVENTS = 3
_CONF_STYLE = {"certain": "bold green", "high": "green", "medium": "yellow", "low": "dim"}


def _hex(v: int | None) -> str:
    return "?" if v is None else f"{v:#x}"


def _facts(c: Crash) -> list[tuple[str, str]]:
    """The crash's identity in a few lines: where, kernel and machine, task, source."""
    kv: list[tuple[str, str]] = [("kind", f"{c.kind} ({KINDS.get(c.kind, '')})")]
    where = []
    if c.ip:
        where.append(escape(str(c.ip)) + (f" at {c.ip.address:#x}" if c.ip.address is not None else ""))
    if c.guilty_frame and (not c.ip or c.ip.symbol != c.guilty_frame):
        where.append(f"guilty {c.guilty_frame}")
    if c.fault_address is not None:
        where.append("fault address " + _hex(c.fault_address) + (f" ({c.access})" if c.access else ""))
    if where:
        kv.append(("where", "; ".join(where)))
    k = c.kernel
    kern = ", ".join(x for x in (k.release, k.distro and f"distro {k.distro}", c.arch) if x)
    if k.hardware:
        kern += ("; " if kern else "") + k.hardware
    if kern:
        kv.append(("kernel", escape(kern)))
    t = c.task
    task = ""
    if t.comm or t.pid is not None:
        task = f"{t.comm} pid {t.pid} cpu {t.cpu}, {c.context} context"
    if c.taint.flags:
        flags = " ".join(c.taint.flags.split())
        task += (
            ("; " if task else "") + f"taint {flags}" + (": " + "; ".join(c.taint.decoded) if c.taint.decoded else "")
        )
    if task:
        kv.append(("task", escape(task)))
    if c.panic:
        kv.append(("panic", escape(c.panic)))
    kv.append(
        (
            "source",
            escape(
                f"{c.source.path}:{c.source.first_line}-{c.source.last_line} ({c.source.format}); bucket {c.bucket}"
            ),
        )
    )
    if c.corrupted:
        kv.append(("[red]incomplete[/]", escape(c.corrupted_reason or "report is truncated or mangled")))
    return kv


def _finding(con: Console, f: Finding, verbose: bool) -> None:
    style = _CONF_STYLE.get(f.confidence, "")
    con.print(f"    [{style}]{f.confidence:<7}[/] {escape(f.summary)}  [dim]({f.code})[/]")
    if verbose:
        ev, more = list(f.evidence[:MAX_EVIDENCE]), max(0, len(f.evidence) - MAX_EVIDENCE)
    else:
        # a low-confidence finding is a lead, not a conclusion: its summary says so; -v shows its evidence
        ev, more = notable_evidence(f, 0 if f.confidence == "low" else SHORT_EVIDENCE)
    for e in ev:
        con.print(f"             [dim]- {escape(e)}[/]")
    if more:  # the JSON and Markdown reports carry all of it
        con.print(f"             [dim]- ... {more} more ({'--format json or markdown' if verbose else '-v'})[/]")
    for line in f.listing if verbose else short_listing(f.listing):
        con.print(f"             {escape(line)}", highlight=False)


def _crash(con: Console, cr: CrashReport, n: int, total: int, verbose: bool) -> None:
    c = cr.crash
    con.rule(f"[bold]Crash {n}/{total}[/]: {escape(c.title)}", align="left")
    con.print("  [bold]verdict[/]")
    for line in compose(cr).lines:
        con.print(f"    {escape(line)}")
    for key, val in _facts(c):
        con.print(f"  [bold]{key:<9}[/]{val}")
    if c.related_events:
        con.print("  [bold]related events[/]")
        events = c.related_events if verbose else c.related_events[:MAX_EVENTS]
        for e in events:
            text = e.text if verbose else e.text.splitlines()[0] if e.text else ""
            con.print(f"    line {e.line} ({e.kind}): {escape(text)}")
        if len(c.related_events) > len(events):
            con.print(f"    [dim]... {len(c.related_events) - len(events)} more (-v)[/]")
    for title, fs in grouped(cr.findings):
        con.print(f"  [bold]{title.lower()}[/]")
        for f in fs:
            _finding(con, f, verbose)
    if cr.known_bugs:
        con.print("  [bold]known bugs[/]")
        for m in cr.known_bugs:
            for line in m.text_lines():
                con.print("    " + escape(line))
    if c.frames:
        con.print("  [bold]call trace[/]")
        for line in trace_lines(c.frames, verbose):
            con.print(f"    {escape(line)}", highlight=False)
    if cr.skipped:
        if verbose:
            con.print("  [bold]not analyzed[/]")
            for s in cr.skipped:
                con.print(f"    [dim]{s.analyzer}: {escape(s.reason)}[/]")
        else:
            con.print(f"  [dim]{escape(unlock_line(cr.skipped) or '')}[/]")
    con.print()


def render(report: Report, color: bool | None = None, width: int | None = None, verbose: bool = False) -> str:
    """The terminal report. Short by default (the verdict, notable findings, one 'not analyzed'
    line: about one screen for a typical oops); `verbose` shows every finding's evidence, every
    frame and every analyzer that did not run."""
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
        _crash(con, cr, n, total, verbose)
    for note in report.notes:
        con.print(f"[yellow]note:[/] {escape(note)}")
    for inp in report.inputs:  # unreadable inputs are reported on stderr by the CLI
        if inp.status == "ok" and inp.crashes == 0:
            con.print(f"{escape(inp.path)}: no kernel crash found ({inp.format})")
        for note in inp.notes:
            con.print(f"[dim]{escape(inp.path)}: {escape(note)}[/]")
    return buf.getvalue()
