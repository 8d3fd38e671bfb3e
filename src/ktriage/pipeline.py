"""Where inputs become a Report: read each input with the right source, analyze each Crash.

input --(logs/, crashout/, vmcore/)--> Crash --(analyzers/)--> Findings --(kb/)--> known bugs
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ktriage.analyzers import AnalysisContext, run_analyzers
from ktriage.inputs import (
    Input,
    InputError,
    JournalJson,
    expand,
    input_notes,
    journal_export_filter,
    open_input,
    printable_path,
)
from ktriage.model import Crash, CrashReport, InputRecord, Report

if TYPE_CHECKING:
    from ktriage.progress import Reporter

# crash utility transcripts are parsed whole (~25x their size in memory): the rest of a larger one is not read
MAX_CRASH_OUTPUT = 8 << 20


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
    debug: bool = False  # print the traceback of an internal error on an input
    isolate_dumps: bool = True  # read each vmcore in a child process (see _read_dump_in_child)


def read_crashes(inp: Input, stream, rec: InputRecord, opts: Options | None = None) -> Iterator[Crash]:
    """Dispatch one opened input to its source. Given `opts`, crashes past `opts.max_crashes` only carry what
    their count by title needs."""
    # the log reader is imported here, not at the top: a command given a vmcore forks the dump's child before it
    # needs it, and that child imports it while drgn indexes the DWARF (ktriage.vmcore.open_early)
    from ktriage.logs import scan_binary
    from ktriage.logs.ureport import ureport_refusal

    full = opts.max_crashes if opts is not None else None
    opts = opts or Options()
    rec.format = inp.kind if not inp.compression else f"{inp.kind}+{inp.compression}"
    if inp.kind == "empty":
        rec.notes.append("empty input")
        return
    if inp.kind in ("log",):
        yield from scan_binary(stream, inp.path, "log", full=full)
    elif inp.kind == "journal-json":
        lines = JournalJson()
        yield from scan_binary(stream, inp.path, "journal", line_filter=lines, full=full)
        rec.notes += lines.notes()
    elif inp.kind == "journal-export":
        yield from scan_binary(stream, inp.path, "journal", line_filter=journal_export_filter(), full=full)
    elif inp.kind == "crash-output":
        data = _read_upto(stream, MAX_CRASH_OUTPUT + 1)
        if len(data) > MAX_CRASH_OUTPUT:
            data = data[: data.rfind(b"\n", 0, MAX_CRASH_OUTPUT) + 1]
            rec.notes.append(
                f"crash utility output larger than {MAX_CRASH_OUTPUT >> 20} MiB: only its first "
                f"{len(data)} bytes were read"
            )
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


def _read_upto(stream, size: int) -> bytes:
    """Up to `size` bytes (a stream's read may return less than asked before its end)."""
    parts, got = [], 0
    while got < size:
        data = stream.read(min(size - got, 4 << 20))
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


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


def _debuginfo_for(crash: Crash, opts: Options):
    """The debug info matching this crash's kernel, when ktriage can find it (issue: debuginfo)."""
    try:
        from ktriage.debuginfo import find_debuginfo  # (crash, opts) -> session or None
    except ImportError:
        return None
    return find_debuginfo(crash, opts)


def _vmcore_for(crash: Crash):
    """The open vmcore session a crash was read from, if it came from a dump."""
    try:
        from ktriage.vmcore import session_for  # (crash) -> session or None
    except ImportError:
        return None
    return session_for(crash)


def analyze_crash(crash: Crash, opts: Options) -> CrashReport:
    from ktriage.logs.report import unread_fields

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


def warm(opts: Options, fmt: str | None = "text") -> None:
    """Import what the report of a vmcore needs and load the knowledge base now, while the dump opens on the
    worker thread (ktriage.vmcore.prefetch): all of it is needed anyway, and drgn's loading leaves the main
    thread free (the GIL released) for that long. `fmt` None: no renderer (a dump's child does not render)."""
    import importlib

    from ktriage.analyzers import load_all

    importlib.import_module("ktriage.logs")  # the dump's kernel log is parsed with it
    load_all()
    renderer = {"json": "ktriage.render.json_out", "markdown": "ktriage.render.markdown"}.get(
        fmt or "", "ktriage.render.text"
    )
    mods = [renderer] if fmt else []
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
        if opts.isolate_dumps and _is_dump(path):
            if prog is not None:  # a dump is read by drgn at random offsets, not streamed: a spinner, not a bar
                prog.reading(path, None)
                prog.step(f"{os.path.basename(path)}: opening the dump, loading debug info")
            _read_dump_in_child(path, rec, report, opts)
        else:
            _read_input(path, rec, report, opts)
        if prog is not None:
            prog.input_done()
    _drop_dmesg_duplicates(report)
    return report


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size if path != "-" else None
    except OSError:
        return None


def _fork_safe() -> bool:
    """A fork copies one thread: a process that already runs others (drgn's OpenMP pool after it indexed DWARF
    in this process, a caller's threads) could leave the child waiting forever on a lock or a thread pool the
    child does not have. Such a process reads dumps itself, as before the child existed."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _is_dump(path: str) -> bool:
    if path == "-" or not hasattr(os, "fork") or not _fork_safe():
        return False
    try:
        from ktriage.vmcore import looks_like_vmcore
    except ImportError:
        return False
    return looks_like_vmcore(path)


def _read_dump_in_child(path: str, rec: InputRecord, report: Report, opts: Options) -> None:
    """Read and analyze a vmcore in a forked child: the dump reader (libkdumpfile under drgn) trusts the dump,
    and a damaged one can end the process with SIGBUS/SIGSEGV. The child sends each crash report as it is
    done; if it dies, the reports it sent stay and the input says "damaged dump" with what was read. A fork
    shares the parent's imports and knowledge base, so the cost is a few milliseconds."""
    import pickle
    import signal

    from ktriage.vmcore import drop_prefetched, settle_prefetch
    from ktriage.vmcore.guard import validate

    verdict = validate(path)
    settle_prefetch()
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read the dump, send results, never return into the parent's code
        os.close(r)
        import faulthandler

        faulthandler.disable()  # its death is reported by the parent in one line, not as a stack dump
        code = 0
        try:
            # drgn opens the dump and indexes the DWARF on a worker thread (C code, GIL released) while this
            # thread imports the analyzers and loads the knowledge base: the child forks nothing afterwards, so
            # its threads are safe here, where the parent's would not be (see _fork_safe)
            _open_early_in_child(path, opts)
            with os.fdopen(w, "wb") as out:

                def emit(cr: CrashReport) -> None:
                    pickle.dump(("crash", cr, rec), out)
                    out.flush()

                sub = Report()
                _read_input(path, rec, sub, opts, emit=emit)
                pickle.dump(("done", rec, sub.notes), out)
        except BaseException:  # noqa: BLE001 - the parent reports a child that ends without "done"
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    got, done, last = 0, False, None
    with os.fdopen(r, "rb") as inp:
        while True:
            try:
                msg = pickle.load(inp)
            except Exception:  # noqa: BLE001 - EOF, or a message cut by the child's death
                break
            if msg[0] == "crash":
                report.crashes.append(msg[1])
                last, got = msg[2], got + 1
            else:
                done, last = True, msg[1]
                for n in msg[2]:
                    if n not in report.notes:
                        report.notes.append(n)
    _, status = os.waitpid(pid, 0)
    drop_prefetched(path)
    if last is not None:
        rec.format, rec.status, rec.error, rec.crashes = last.format, last.status, last.error, last.crashes
        rec.notes = list(last.notes)
    rec.notes += [n for n in verdict.notes + verdict.problems if n not in rec.notes]
    if not done:
        if os.WIFSIGNALED(status):
            how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            how = f"ended with status {os.WEXITSTATUS(status)}"
        read = f"after {got} crash report(s) were read" if got else "before any crash was read"
        why = f"; header check: {'; '.join(verdict.problems)}" if verdict.problems else ""
        rec.format = "vmcore"
        rec.status = "partial" if got else "error"
        rec.error = f"{printable_path(path)}: damaged dump: the dump reader {how} {read}{why}"


def _open_early_in_child(path: str, opts: Options) -> None:
    """Only a head start: whatever fails here, read_vmcore opens the dump itself and reports it."""
    from ktriage.vmcore import open_early

    try:
        if open_early(path, opts) and opts.analyze:
            warm(opts, None)
    except Exception:  # noqa: BLE001
        pass


def _read_input(
    path: str,
    rec: InputRecord,
    report: Report,
    opts: Options,
    emit: Callable[[CrashReport], None] | None = None,
) -> None:
    """One input to crashes in `report`. Whatever happens, the input ends as read, partial (with the reason)
    or an error: a failure here never costs another input its report."""
    # out of the try below: failing to import the log reader (out of memory under a batch task's limit) is not
    # this input's error. Not at the module's top: a vmcore's child imports it while drgn indexes (open_early).
    import ktriage.logs.report  # noqa: F401
    import ktriage.logs.ureport  # noqa: F401

    shown = printable_path(path)
    over: dict[str, int] = {}  # titles of the crashes past opts.max_crashes
    stream = None
    try:
        inp, stream = open_input(path)
        prog = opts.progress
        if prog is not None and emit is None:  # not in a dump's child: the parent shows that input's progress
            prog.reading(path, None if inp.kind == "vmcore" else _size(path))
            if inp.kind == "vmcore":
                prog.step(f"{os.path.basename(path)}: opening the dump, loading debug info")
        for crash in read_crashes(inp, stream, rec, opts):
            rec.crashes += 1
            if rec.crashes > opts.max_crashes:
                over[crash.title] = over.get(crash.title, 0) + 1
                continue
            if prog is not None and emit is None:
                prog.step(f"analyzing: {crash.title[:70]}")
            cr = analyze_crash(crash, opts)
            _lift_notes(cr, report)
            (emit or report.crashes.append)(cr)
        notes, broken = input_notes(stream)
        rec.notes += notes
        if broken:
            rec.status, rec.error = "partial", f"{shown}: read up to where it broke: {broken}"
    except InputError as e:
        rec.status, rec.error = "error", str(e)
    except (OSError, EOFError, ValueError) as e:  # reading failed part way
        rec.status = "partial" if rec.crashes else "error"
        rec.error = f"{shown}: could not be read to the end: {e}"
    except RecursionError:
        rec.status = "partial" if rec.crashes else "error"
        rec.error = f"{shown}: input nested too deeply to be read (stopped after {rec.crashes} crashes)"
    except Exception as e:  # noqa: BLE001 - a ktriage bug on this input must not cost the other inputs
        rec.status = "partial" if rec.crashes else "error"
        rec.error = f"{shown}: internal error while reading ({type(e).__name__}: {e}); rerun with --debug"
        if opts.debug:
            import traceback

            traceback.print_exc()
    finally:
        if stream is not None and path != "-":
            stream.close()
    if over:
        top = sorted(over.items(), key=lambda kv: -kv[1])
        shown_titles = "; ".join(f"{n} x {t}" for t, n in top[:10])
        more = f"; and {len(top) - 10} other titles" if len(top) > 10 else ""
        rec.notes.append(
            f"{rec.crashes} crashes found; the first {opts.max_crashes} are reported, the other "
            f"{rec.crashes - opts.max_crashes} by title: {shown_titles}{more}"
        )
