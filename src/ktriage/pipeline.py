"""Where inputs become a Report: read each input with the right source, analyze each Crash.

input --(logs/, crashout/, vmcore/)--> Crash --(analyzers/)--> Findings --(kb/)--> known bugs
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ktriage.analyzers import AnalysisContext, run_analyzers
from ktriage.inputs import Input, InputError, expand, journal_export_filter, journal_json_line, open_input
from ktriage.logs import scan_binary
from ktriage.logs.report import unread_fields
from ktriage.logs.ureport import ureport_refusal
from ktriage.model import Crash, CrashReport, InputRecord, Report

if TYPE_CHECKING:
    from ktriage.progress import Reporter

MAX_CRASH_OUTPUT = 256 << 20  # crash utility transcripts are read whole; refuse absurd sizes


@dataclass
class Options:
    kb_dirs: list[str] = field(default_factory=list)
    vmlinux: str | None = None  # --vmlinux: the kernel's debug image (DWARF)
    debuginfo_dirs: list[str] = field(default_factory=list)  # --debuginfo: dirs with vmlinux / .ko.debug files
    src_dirs: list[str] = field(default_factory=list)  # --src: kernel source trees for listings
    analyze: bool = True
    btf: bool = True  # vmcores without DWARF: types from the dump's own BTF (ktriage.btf)
    max_crashes: int = 1000  # per input: a log of 100k soft lockups must not exhaust memory
    changelog: str | None = None  # --changelog: the distro kernel package's changelog (kb/changelog.py)
    progress: Reporter | None = None  # progress on a terminal (ktriage.progress); None: silent


def read_crashes(inp: Input, stream, rec: InputRecord, opts: Options | None = None) -> Iterator[Crash]:  # type: ignore[no-untyped-def]
    """Dispatch one opened input to its source."""
    opts = opts or Options()
    rec.format = inp.kind if not inp.compression else f"{inp.kind}+{inp.compression}"
    if inp.kind == "empty":
        rec.notes.append("empty input")
        return
    if inp.kind in ("log",):
        yield from scan_binary(stream, inp.path, "log")
    elif inp.kind == "journal-json":
        yield from scan_binary(stream, inp.path, "journal", line_filter=journal_json_line)
    elif inp.kind == "journal-export":
        yield from scan_binary(stream, inp.path, "journal", line_filter=journal_export_filter())
    elif inp.kind == "crash-output":
        data = stream.read(MAX_CRASH_OUTPUT + 1)
        if len(data) > MAX_CRASH_OUTPUT:
            raise InputError(f"{inp.path}: crash utility output larger than {MAX_CRASH_OUTPUT >> 20} MiB")
        yield from _crash_output_and_log(data.decode("utf-8", "replace"), inp.path)
    elif inp.kind == "vmcore":
        try:
            from ktriage.vmcore import read_vmcore  # (path, opts, rec) -> Iterator[Crash]
        except ImportError:
            raise InputError(
                f"{inp.path}: a kernel dump (vmcore); vmcore analysis is not available in this "
                f"version - extract its log with `makedumpfile --dump-dmesg {inp.path} dmesg.txt` "
                f"and analyze that"
            ) from None
        yield from read_vmcore(inp.path, opts, rec)
    elif inp.kind == "ureport":
        raise InputError(ureport_refusal(stream.read(1 << 20), inp.path))
    elif inp.kind == "elf":
        raise InputError(f"{inp.path}: an ELF object, not a log or a core dump (a vmlinux or module?)")
    else:
        raise InputError(f"{inp.path}: binary data, not a kernel log, crash output or vmcore")


def _crash_output_and_log(text: str, path: str) -> Iterator[Crash]:
    """A `crash` session transcript often also quotes the dmesg oops: read both, keep each crash once.

    The dmesg oops is the richer record (Code:, module of the IP, exact fault address), so it wins
    when both describe the same faulting function.
    """
    from ktriage.crashout import parse_crash_output
    from ktriage.logs import parse_log_text

    from_log = parse_log_text(text, path)
    seen = {c.ip.symbol for c in from_log if c.ip and c.ip.symbol}
    yield from from_log
    for c in parse_crash_output(text, path):
        if not (c.ip and c.ip.symbol in seen):
            yield c


def _debuginfo_for(crash: Crash, opts: Options):  # type: ignore[no-untyped-def]
    """The debug info matching this crash's kernel, when ktriage can find it (issue: debuginfo)."""
    try:
        from ktriage.debuginfo import find_debuginfo  # (crash, opts) -> session or None
    except ImportError:
        return None
    return find_debuginfo(crash, opts)


def _vmcore_for(crash: Crash):  # type: ignore[no-untyped-def]
    """The open vmcore session a crash was read from, if it came from a dump."""
    try:
        from ktriage.vmcore import session_for  # (crash) -> session or None
    except ImportError:
        return None
    return session_for(crash)


def analyze_crash(crash: Crash, opts: Options) -> CrashReport:
    cr = CrashReport(crash)
    cr.skipped = unread_fields(crash) if crash.source.format != "vmcore" else []
    if opts.analyze:
        ctx = AnalysisContext(crash, debuginfo=_debuginfo_for(crash, opts), vmcore=_vmcore_for(crash))
        cr.skipped += run_analyzers(ctx)
        cr.findings = ctx.findings
        try:
            from ktriage.kb import match_crash
        except ImportError:
            pass
        else:
            cr.known_bugs = match_crash(crash, cr.findings, opts.kb_dirs, changelog=opts.changelog)
    return cr


def _lift_notes(cr: CrashReport, report: Report) -> None:
    """Knowledge-base notes (a rule file that failed to load) concern the run, not the crash."""
    keep = []
    for m in cr.known_bugs:
        if type(m).__name__ == "KBNote":
            text = " ".join(m.text_lines())
            if text not in report.notes:
                report.notes.append(text)
        else:
            keep.append(m)
    cr.known_bugs = keep


def _drop_dmesg_duplicates(report: Report) -> None:
    """kdump writes `vmcore` and `vmcore-dmesg.txt` side by side: the same crash, told twice.

    Keep the one read from the dump (it has memory behind its findings) and say so.
    """
    import os

    from_dump = {
        (os.path.dirname(c.crash.source.path), c.crash.bucket)
        for c in report.crashes
        if c.crash.source.format == "vmcore"
    }
    if not from_dump:
        return
    kept = []
    for c in report.crashes:
        key = (os.path.dirname(c.crash.source.path), c.crash.bucket)
        if c.crash.source.format != "vmcore" and key in from_dump:
            report.notes.append(
                f"{c.crash.source.path}: same crash as the vmcore beside it "
                f"({c.crash.title}); reported once, from the vmcore"
            )
            continue
        kept.append(c)
    report.crashes = kept


def warm(opts: Options, fmt: str = "text") -> None:
    """Import what the report of a vmcore needs and load the knowledge base now, while the dump opens on the
    worker thread (ktriage.vmcore.prefetch): all of it is needed anyway, and drgn's loading leaves the main
    thread free (the GIL released) for that long."""
    import importlib

    from ktriage.analyzers import load_all

    load_all()
    mods = [{"json": "ktriage.render.json_out", "markdown": "ktriage.render.markdown"}.get(fmt, "ktriage.render.text")]
    if opts.analyze:
        mods += [
            "drgn.helpers.linux",
            "ktriage.vmcore.code",
            "ktriage.insn.codeline",
            "ktriage.debuginfo",
            "ktriage.debuginfo.member",
            "ktriage.vmcore.decoders",
        ]
        if opts.vmlinux or opts.debuginfo_dirs:
            mods.append("elftools.elf.elffile")  # the log-level debug info search opens the files
        try:
            from ktriage.kb.rules import cached_rules
        except ImportError:
            pass
        else:
            cached_rules(tuple(opts.kb_dirs))
    for mod in mods:
        try:
            importlib.import_module(mod)
        except ImportError:
            pass


def analyze_paths(paths: list[str], opts: Options | None = None) -> Report:
    opts = opts or Options()
    report = Report()
    prog = opts.progress
    all_paths = list(expand(paths))
    if prog is not None:
        prog.inputs(len(all_paths))
    for path in all_paths:
        rec = InputRecord(path)
        report.inputs.append(rec)
        try:
            inp, stream = open_input(path)
            if prog is not None:
                # a dump is read by drgn at random offsets, not streamed: a spinner, not a byte bar
                prog.reading(path, None if inp.kind == "vmcore" else _size(path))
                if inp.kind == "vmcore":
                    prog.step(f"{os.path.basename(path)}: opening the dump, loading debug info")
            try:
                for crash in read_crashes(inp, stream, rec, opts):
                    rec.crashes += 1
                    if rec.crashes > opts.max_crashes:
                        continue
                    if prog is not None:
                        prog.step(f"analyzing: {crash.title[:70]}")
                    cr = analyze_crash(crash, opts)
                    _lift_notes(cr, report)
                    report.crashes.append(cr)
            finally:
                if path != "-":
                    stream.close()
            if rec.crashes > opts.max_crashes:
                rec.notes.append(f"{rec.crashes} crashes found; only the first {opts.max_crashes} are reported")
        except InputError as e:
            rec.status, rec.error = "error", str(e)
        except (OSError, EOFError, ValueError) as e:  # decompression errors surface while reading
            rec.status = "partial" if rec.crashes else "error"
            rec.error = f"{path}: could not be read to the end: {e}"
        if prog is not None:
            prog.input_done()
    _drop_dmesg_duplicates(report)
    return report


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size if path != "-" else None
    except OSError:
        return None
