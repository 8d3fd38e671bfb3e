"""Where a log line becomes a Crash: find report headers, collect each report, build Crashes.

Streaming and bounded: the scanner keeps a ring of recent records (for context such as the
kernel release or a warning printed just before the oops) and at most one open report.
A report quoted in a mail or commit message (untimestamped, its header indented by spaces or a
tab) is read with that indentation removed, and ends where the text goes back to a lesser one.
`scan_binary` adds a fast path for huge logs: while no report is open, a block with none of the anchors
derived from the header patterns (ktriage.logs.anchors) is only counted, never split into lines.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, BinaryIO

from ktriage.logs.anchors import AnchorSearch, compile_other_run, compile_prefilter, derive
from ktriage.logs.formats import END_MARKERS, FORMATS, IGNORE, TRIGGER, F, Format
from ktriage.logs.guilty import first_guilty
from ktriage.logs.pstore import Part, part_of, reorder
from ktriage.logs.records import Record, line_records, other_program_line, records
from ktriage.logs.report import build_crash
from ktriage.model import Crash, Event

_TRIGGER_STR = re.compile(TRIGGER.pattern.decode())
MAX_REPORT_LINES = 1000
CONTEXT_LINES = 300
_BOOT = re.compile(r"^Linux version \d")
_ABSORB_LINES = 12
_STACK_KEYWORD = re.compile(r"^\s*Call [Tt]race:\s*$")
_TASK_LINE_START = re.compile(r"^CPU: \d+ (?:UID: \d+ )?PID: \d+ Comm: ")
# Without timestamps, a report ends where the text stops looking like an oops (mail, blog, notes).
_OOPSY = re.compile(
    r"[0-9a-f]{4,}|\+0x|Call Trace|Call trace|Modules linked|Hardware name|Tainted|CPU|"
    r"^\s*<|^\s*\[|^\s*$|---|Code:|Comm:|Stack:|Kernel|Oops|BUG|RIP|pc :|lr :|"
    r"backtrace|hex dump|comm \"|^\s*(?:[0-9a-f]{2} ){4}|"
    # arm64 `Mem abort info:` fields (`  SET = 0, FnV = 0`), lockdep's fixed sentences and scenario table
    r"^\s*\w{1,12} = \w|lock already depends|dependency chain|might help us debug|unsafe locking scenario|"
    r"Chain exists of|DEADLOCK|^\s*(?:lock|unlock|rlock|wlock|<Interrupt>)\b|^\s*-> #\d|already holding|held by"
)
_PROSE_LINES = 4
_FOREIGN_LINES = 60  # untimestamped lines in a row that end a timestamped report  # a second header this early in a report belongs to it (list_del -> kernel BUG)


PANIC_TRAILER_LINES = 60  # a panic line this close after a closed report is that report's ending

# A log (or a pstore part) that begins inside a report, after its header: the saved text starts at the
# registers or in the call trace. Its first lines of that shape open a report with no header: kind unknown,
# the frames and the guilty function read as usual, marked corrupted with the reason.
HEADLESS_LINES = 40  # how far into a log or a part such a line may still be the cut report's
_HEADLESS_START = re.compile(
    r"^(?:Call [Tt]race:|pc : \[?<?[0-9a-f]|PC is at \S|RIP: [0-9a-f]{4}:\S|NIP: {1,4}[0-9a-f]|"
    # MIPS `epc   : 80108aac __kmalloc_track_caller+0x148/0x228`; ARM's unwinder `[<c0010525>] (__irq_svc) from [<`
    r"epc\s{1,4}: [0-9a-f]{8,16} \S|\[<[0-9a-f]{8}>\] ?\([.\w$]{1,128}(?:\+0x[0-9a-f]{1,8}/0x[0-9a-f]{1,8})?\) from \[<|"
    r"\s{0,4}(?:\[<[0-9a-f]{8,16}>\] )?(?:\? )?[A-Za-z_][\w.]{0,120}\+0x[0-9a-f]{1,8}/0x[0-9a-f]{1,8}"
    r"(?: \[[\w]{1,64}\])?\s{0,4}$)"
)
# Only at the very start: every line before it must look like a report's (registers, frames, blank);
# ... and not when the log shows the report's head first (a task line: a dump_stack() after a message, a header
# this reader does not know): then the trace is not a cut report's.
_HEAD_SEEN = re.compile(r"\bCPU: \d{1,5} PID: \d|\bComm: \S|^Pid: \d{1,9}, comm: |^Hardware name: ")
HEADLESS_MIN_FRAMES = 2  # one frame line at a log's start is noise (an interleaved, dropped-printk line)
# the stack printers and, for a cut SLUB report's own stack, the slab debug functions are not what failed
HEADLESS = F(
    r"^",
    "unknown",
    "truncated report in {func}",
    skip=("dump_stack", "show_stack", "dump_backtrace", "free_debug_processing", "alloc_debug_processing", "slab_")
    + ("kmem_cache_", "kfree", "kmalloc", "print_trailer", "object_err", "check_bytes"),
)
# The panic line a watchdog prints after its report names the report's kind even when the header is lost.
PANIC_KINDS: tuple[tuple[str, str], ...] = (
    ("softlockup: hung tasks", "soft-lockup"),
    ("hardlockup:", "hard-lockup"),
    ("Hard LOCKUP", "hard-lockup"),
    ("hung_task: blocked tasks", "hung-task"),
    ("RCU Stall", "rcu-stall"),
)
# powerpc xmon's exception print, untimestamped inside a timestamped console: the crash's own lines
_XMON = re.compile(
    r"^\s{0,6}(?:cpu 0x[0-9a-f]{1,4}: Vector: |(?:pc|lr): [0-9a-f]{8,16}: |pid\s{1,4}= \d{1,9}, comm = )"
)
_WATCHDOG_KINDS = ("soft-lockup", "hard-lockup")
HEADLESS_REASON = "the log begins inside the report: its header line, which names the kind, is not in the log"


# Text before a header that makes the line prose about a crash, not a crash: a quotation mark, a mail
# Subject, or a run of words (`you'll typically see kernel log messages like BUG: soft lockup - ...`).
# A quotation opened right after CJK text is not: Chinese post-mortems quote the kernel's own message inline
# (`内核报错“IPv4: ...”。同时出现“Unable to handle kernel paging request at ...”`), and that is the report.
_PROSE_WORDS = re.compile(r"^\s*(?:Subject|Re|Fwd?|Betreff|Objet|AW|WG): |(?:[A-Za-z][a-z']{0,20}[,;]? ){5}")
_QUOTES = '"“”‘’«»`'
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


# ... or a placeholder in what the header line says (a tutorial's `Kernel panic - not syncing: ... (e.g.,`).
_PROSE_IN = re.compile(r": (?:\.\.\.|…)(?: |$)|\(e\.g\.|\bi\.e\.,")


def _prose_before(prefix: str) -> bool:
    if _PROSE_WORDS.search(prefix):
        return True
    q = max(prefix.rfind(c) for c in _QUOTES)
    return q >= 0 and not (q > 0 and _CJK.match(prefix[q - 1]))


# literals one of which every END_MARKERS match holds, derived from the pattern as the pre-filter's anchors are
_END_ANCHORS = derive(END_MARKERS.pattern)


def _may_end(text: str) -> bool:
    """Whether END_MARKERS could match: a few substring tests cost a quarter of the search that every line of
    a report would otherwise pay, and being derived they follow any change to the pattern."""
    if _END_ANCHORS is None:  # a form without a literal: always search
        return True
    for a in _END_ANCHORS:
        if a in text:
            return True
    return False


def match_header(text: str) -> tuple[Format, re.Match[str]] | None:
    if not _TRIGGER_STR.search(text) or IGNORE.search(text):
        return None
    for fmt in FORMATS:
        m = fmt.header.search(text)
        if m:
            if (m.start() and _prose_before(text[: m.start()])) or _PROSE_IN.search(text, m.start()):
                return None  # a sentence or a mail header that names a crash
            return fmt, m
    return None


def _dedent(rec: Record) -> tuple[str | None, Record]:
    """An untimestamped line indented the way mails and commit messages quote a report
    (`  WARNING: CPU: 0 PID: 1251 at ...`, a tab before `BUG:`): when the text after the
    indentation is a report header, return (indentation, record without it); else (None, rec)."""
    body = rec.text.lstrip(" \t")
    if not body or match_header(body) is None:
        return None, rec
    indent = rec.text[: len(rec.text) - len(body)]
    # one space before the first line only is a copy-paste artifact, not a quoting indentation
    return (None if indent == " " else indent), dataclasses.replace(rec, text=body)


class Scanner:
    """Feed Records in order; collect Crashes as their reports close."""

    def __init__(self, path: str, source_format: str = "log", full: int | None = None) -> None:
        self.path = path
        self.source_format = source_format
        self.full = full  # reports built whole; past them, only what a count by title needs (--max-crashes)
        self.built = 0
        self.before: deque[Record] = deque(maxlen=CONTEXT_LINES)
        self.release_line: Record | None = None
        self.region: list[Record] | None = None
        self.fmt: Format | None = None
        self.match: re.Match[str] | None = None
        self.caller: str | None = None
        self.has_frames = False
        self.done: list[Crash] = []
        self.since_close = 10**9  # lines since the last report closed (a panic trailer belongs to it when close)
        self.lineno = 0  # the line of the record being read
        self.closed_line = -(10**9)  # the line the last report closed at
        self.prose = 0
        self.foreign = 0
        self.indent: str | None = None  # the open report is an indented excerpt (mail, commit message)
        self.part: Part | None = None  # the pstore part being read (`Oops#1 Part1` header)
        self.lead = 0  # records since the log or the current pstore part began
        self.fresh = True  # no report opened yet in this log or part: a report's tail may begin it

    @property
    def idle(self) -> bool:
        return self.region is None

    def _context(self) -> list[Record]:
        """The kernel's records of the CONTEXT_LINES lines before the report (a line window, not a count of
        records: the block pre-filter of `scan_binary` keeps exactly that window of a block it skips)."""
        assert self.region is not None
        first = self.region[0].lineno - CONTEXT_LINES
        ctx = [r for r in self.before if r.lineno >= first]
        if self.release_line and (not ctx or self.release_line.lineno < ctx[0].lineno):
            ctx.insert(0, self.release_line)
        return ctx

    def _close(self, cut: bool = False, eof: bool = False) -> None:
        assert self.region is not None and self.fmt is not None and self.match is not None
        light = self.full is not None and self.built >= self.full and self.fmt is not HEADLESS
        crash = build_crash(
            self.region,
            self.fmt,
            self.match,
            self.path,
            () if light else self._context(),  # the title is read from the report's own lines
            cut=cut,
            source_format=self.source_format,
            eof=eof,
            title_only=light,
        )
        if self.fmt is HEADLESS:
            self.before.extend(self.region[1:])  # still the context of the reports after it (their arch...)
            # ... unless the faulting IP is printed with its function (an x86 `RIP  [<..>] f+0x..` trailer, MIPS epc)
            if sum(1 for f in crash.frames if f.symbol) < HEADLESS_MIN_FRAMES and not (crash.ip and crash.ip.symbol):
                self.region, self.indent = None, None
                return
            crash = self._headless(crash)
        elif eof and self.part is not None and self.part.part > 1:
            rest = f"{self.part.reason}#{self.part.dump} Part{self.part.part - 1}"
            note = f"the log ends with pstore part {self.part.label}: the report's end is in part {rest}"
            crash = crash.replace(related_events=crash.related_events + (Event("note", note, crash.source.last_line),))
        self.done.append(crash)
        self.built += 1
        self.region = None
        self.indent = None
        self.since_close = 0
        self.closed_line = self.lineno

    def _headless(self, crash: Crash) -> Crash:
        """A report whose head is not in the log: say so, and where the head is when pstore tells it."""
        reason = HEADLESS_REASON
        if self.part is not None:
            head = f"{self.part.reason}#{self.part.dump} Part{self.part.part + 1}"
            reason = f"pstore part {self.part.label} begins inside the report: its head is in part {head}"
        notes = [Event("note", reason, crash.source.first_line)]
        guilty, title = crash.guilty_frame, crash.title
        at_ip = crash.ip.symbol if crash.ip and crash.ip.symbol else None
        if at_ip:
            # the faulting IP outranks the trace's first frame (a caller); with no frame at all it is the only
            # function named, generic or not
            ip_guilty = first_guilty([at_ip], HEADLESS.skip) or (None if any(f.symbol for f in crash.frames) else at_ip)
            if ip_guilty and ip_guilty != guilty:
                guilty, title = ip_guilty, f"truncated report in {ip_guilty}"
                notes.append(
                    Event("note", f"guilty frame {ip_guilty}: from the faulting IP line", crash.source.first_line)
                )
        kind = crash.kind
        for text, k in PANIC_KINDS if crash.panic else ():
            if crash.panic.startswith(text):  # type: ignore[union-attr]
                kind = k
                notes.append(Event("note", f"kind {k}: from the panic line `{crash.panic}`", crash.source.last_line))
                break
        return crash.replace(
            kind=kind,
            guilty_frame=guilty,
            title=title,
            corrupted=True,
            corrupted_reason=reason,
            related_events=crash.related_events + tuple(notes),
        )

    def _part_header(self, p: Part) -> None:
        """A pstore part begins: it continues the open report only when it is the next part of the same dump."""
        if self.region is not None and not p.follows(self.part):
            self._close(cut=True)
        self.part = p
        if self.region is None:
            self.lead, self.fresh = 0, True

    def _open(self, rec: Record, fmt: Format, m: re.Match[str]) -> None:
        self.fresh = False
        self.prose = 0
        self.foreign = 0
        self.region, self.fmt, self.match, self.caller, self.has_frames = [rec], fmt, m, rec.caller, False

    def _attach_panic(self, rec: Record) -> bool:
        """A `Kernel panic - not syncing` right after a closed report is that report's ending."""
        if not self.done or self.since_close > PANIC_TRAILER_LINES or "Kernel panic" not in rec.text:
            return False
        last = self.done[-1]
        if last.panic is None:
            text = rec.text.split("Kernel panic - not syncing: ", 1)[-1].rstrip(" ]-")
            self.done[-1] = last.replace(
                panic=text,
                source=type(last.source)(last.source.path, last.source.first_line, rec.lineno, last.source.format),
            )
        return True

    def feed(self, rec: Record) -> None:
        if rec.origin != "kernel":
            return
        self.lineno = rec.lineno
        if rec.ts is None and (p := part_of(rec.text)) is not None:
            self._part_header(p)
            return
        if self.indent is not None and self.region is not None and rec.ts is None:
            if rec.text.startswith(self.indent):
                rec = dataclasses.replace(rec, text=rec.text[len(self.indent) :])
            elif rec.text.strip():
                self._close()  # the text went back to a lesser indentation: the excerpt ended
        if _BOOT.match(rec.text):
            if self.region is not None:
                self._close(cut=True)
            self.before.clear()
            self.release_line = rec
        indent = None
        if self.region is None and rec.ts is None and rec.text[:1] in (" ", "\t"):
            indent, rec = _dedent(rec)
        hit = match_header(rec.text)
        if self.region is None:
            self.since_close = rec.lineno - self.closed_line
            if hit:
                fmt, m = hit
                if not fmt.starts_report and self._attach_panic(rec):
                    return
                self._open(rec, fmt, m)
                self.indent = indent
                return
            if self.fresh:
                self.lead += 1
                if self.lead > HEADLESS_LINES or _HEAD_SEEN.search(rec.text):
                    self.fresh = False
                elif not _OOPSY.search(rec.text) and not _HEADLESS_START.match(rec.text):
                    self.fresh = False  # prose or an ordinary log line first: a trace after it is quoted, not cut
                elif _HEADLESS_START.match(rec.text):
                    empty = HEADLESS.header.match("")
                    assert empty is not None  # `^` matches the empty text
                    self._open(dataclasses.replace(rec, text=""), HEADLESS, empty)
                    assert self.region is not None
                    self.region.append(rec)
                    self.has_frames = "+0x" in rec.text
                    return
            self.before.append(rec)
            return
        # a report is open
        if rec.caller and self.caller and rec.caller != self.caller and rec.caller[0] == self.caller[0]:
            return  # another task's/CPU's line interleaved on the console
        if rec.ts is None and self.region[0].ts is not None and not hit and not _XMON.match(rec.text):
            # a timestamped log interleaved with other text (a test harness, a shell on the same
            # console): skip it, and end the report only when the kernel's lines do not come back
            self.foreign += 1
            if self.foreign >= _FOREIGN_LINES:
                self._close()
            self.before.append(rec)
            return
        self.foreign = 0
        head = self.region[0]
        if (
            hit
            and hit[0].starts_report
            and (
                self.fmt is HEADLESS
                or not (len(self.region) < _ABSORB_LINES and not self.has_frames)
                # in a syslog, a watchdog's header again is the next lockup (a host's messages file often keeps
                # only the emergency-level header of each); the same line at the same time is one line logged
                # twice. On a console, two CPUs' headers in a row are one report's interleaved start.
                or (
                    hit[0] is self.fmt
                    and hit[0].kind in _WATCHDOG_KINDS
                    and rec.stamp is not None
                    and head.stamp is not None
                    and (rec.stamp, rec.text) != (head.stamp, head.text)
                )
            )
        ):
            self._close()
            self._open(rec, *hit)
            return
        self.region.append(rec)
        if "+0x" in rec.text or _STACK_KEYWORD.search(rec.text) or _TASK_LINE_START.match(rec.text):
            # the report reached its task line or its stack: a header from here on is another report
            # (another CPU's oops printed into this one), not the second line of a two-line header
            self.has_frames = True
        if rec.ts is None:
            self.prose = 0 if _OOPSY.search(rec.text) else self.prose + 1
            if self.prose >= _PROSE_LINES:
                del self.region[-self.prose :]
                self._close()
                return
        if _may_end(rec.text) and END_MARKERS.search(rec.text) or len(self.region) >= MAX_REPORT_LINES:
            self._close()

    def finish(self) -> list[Crash]:
        """The input ended: close the open report (it may be cut), return every crash not taken."""
        if self.region is not None:
            self._close(cut=True, eof=True)
        return self.done

    def take(self) -> list[Crash]:
        """The closed crashes, but the last one stays while its `Kernel panic - not syncing` trailer may still come
        (arm64 prints `---[ end trace ]---` before it): streaming must not cut the panic reason off."""
        if self.region is None and self.done and self.since_close <= PANIC_TRAILER_LINES:
            out, self.done = self.done[:-1], self.done[-1:]
            return out
        out, self.done = self.done, []
        return out


def scan_records(recs: Iterable[Record], path: str = "-", source_format: str = "log") -> list[Crash]:
    sc = Scanner(path, source_format)
    for r in recs:
        sc.feed(r)
    return sc.finish()


def parse_log_text(text: str, path: str = "-") -> list[Crash]:
    """Every crash in a kernel log given as one string."""
    return scan_records(records(reorder(list(enumerate(_split_lines(text), 1)))), path)


def _split_lines(text: str) -> list[str]:
    """Split on LF only: a lone CR is console noise, not a line break (keeps line numbers true)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


CHUNK = 4 << 20
LineFilter = Callable[[str], "str | None"]  # a journal export's line -> the kernel's text in it, None: not the kernel's


def scan_binary(
    f: BinaryIO,
    path: str,
    source_format: str = "log",
    line_filter: LineFilter | None = None,
    prefilter: bool = True,
    full: int | None = None,
) -> Iterator[Crash]:
    """Scan a (possibly huge) binary stream; yields crashes as they close.

    `line_filter` optionally maps each decoded line to the kernel text (journal JSON/export).
    `prefilter`: skip blocks without a header anchor at C speed (see `_scan_chunk`); False reads every line
    (the reference the pre-filter is tested against: both give the same crashes).
    `full`: build the first `full` crashes whole, the others with only their kind, title, panic line and source
    span (a run that reports `--max-crashes` of them counts the rest by title).
    """
    sc = Scanner(path, source_format, full)
    skipped = _Skipped()  # (the crashes found do not depend on what is left in it at the end)
    lineno = 0
    tail = b""
    first = True
    while True:
        data = f.read(CHUNK)
        if not data:
            break
        if first and line_filter is None and len(data) < CHUNK and _PART_BYTES.search(data):
            # pstore parts (small by nature): put each dump's parts back in time order, read every line
            lines = reorder(list(enumerate(_split_lines(data.decode("utf-8", "replace")), 1)))
            for r in records(lines):
                sc.feed(r)
            yield from sc.finish()
            return
        first = False
        data = tail + data if tail else data
        cut = data.rfind(b"\n")
        if cut < 0:
            tail = data
            continue
        tail = data[cut + 1 :]
        lineno = yield from _scan_chunk(sc, data, cut + 1, lineno, line_filter, prefilter, skipped)
    if tail:
        lineno = yield from _scan_chunk(sc, tail + b"\n", len(tail) + 1, lineno, line_filter, prefilter, skipped)
    yield from sc.finish()


_PART_BYTES = re.compile(rb"(?m)^(?:<\d{1,3}>)?[A-Z][a-z]{3,8}#\d{1,9} Part\d{1,9}\s{0,4}$")


@functools.cache
def _anchor() -> AnchorSearch:
    """The block pre-filter, compiled when a file is first read through scan_binary (~50 ms: deriving the
    anchors, then Hyperscan's compile): a vmcore's log and text given as lines never need it."""
    return compile_prefilter()


@functools.cache
def _other_run() -> Any:
    return compile_other_run()  # records.OTHER_SYSLOG_RUN, in RE2


class _Skipped:
    """The last lines of the runs skipped since the scanner was last fed: read into its context only when a line
    is fed next (a run followed by another of CONTEXT_LINES lines or more is never read at all)."""

    def __init__(self) -> None:
        self.tails: list[tuple[bytes, int]] = []  # (lines, number of the first)

    def add(self, lines: bytes, first: int, n: int) -> None:
        if n >= CONTEXT_LINES:
            self.tails.clear()  # what came before is out of the window of any report to come
        self.tails.append((lines, first))

    def flush(self, sc: Scanner) -> None:
        for lines, first in self.tails:
            for r in records(enumerate(_split_lines(lines.decode("utf-8", "replace")), first)):
                if r.origin == "kernel":
                    sc.before.append(r)
        self.tails.clear()


def _skip(skipped: _Skipped, chunk: bytes, start: int, end: int, lineno: int) -> int:
    """Lines [start, end) of a chunk hold no anchor: no header, boot banner or pstore part can be among them, so
    fed one by one they would only add the kernel's records to the context. Count them, and keep only the last
    CONTEXT_LINES of them, the window `Scanner._context` keeps."""
    n = chunk.count(b"\n", start, end)
    ctx = end - 1
    for _ in range(min(n, CONTEXT_LINES)):
        ctx = chunk.rfind(b"\n", start, ctx)
        if ctx < 0:
            break
    ctx = max(ctx + 1, start) if n > CONTEXT_LINES else start
    skipped.add(chunk[ctx:end], lineno + n - min(n, CONTEXT_LINES) + 1, n)
    return lineno + n


def _month_first(chunk: bytes, pos: int) -> bool:
    """The line may begin another program's syslog line (`Mon `): a call into RE2 costs more than this test."""
    return 65 <= chunk[pos] <= 90 and chunk[pos + 3 : pos + 4] == b" "


def _scan_chunk(
    sc: Scanner,
    chunk: bytes,
    size: int,
    lineno: int,
    line_filter: LineFilter | None,
    prefilter: bool,
    skipped: _Skipped,
) -> Generator[Crash, None, int]:
    """Feed the lines of chunk[:size] (it ends with a newline) to the scanner. While no report is open, one
    search for the anchors (RE2 over the whole block) finds the next line that may matter; the lines before it
    are skipped at memchr speed. Other programs' syslog lines inside a report are stepped over."""
    if line_filter is not None:
        lines = _split_lines(chunk[:size].decode("utf-8", "replace"))
        pairs = ((n, t) for n, t in ((n, line_filter(l)) for n, l in enumerate(lines, lineno + 1)) if t is not None)
        for r in records(pairs):
            sc.feed(r)
            if sc.done:
                yield from sc.take()
        return lineno + len(lines)
    pos = 0
    while pos < size:
        if prefilter and sc.idle and not sc.fresh:  # a log's first lines may be a report's tail: read them all
            hit = _anchor().first_end(chunk, pos, size)
            if hit is None:
                return _skip(skipped, chunk, pos, size, lineno)
            line_start = chunk.rfind(b"\n", pos, hit) + 1 or pos
            if line_start > pos:
                lineno = _skip(skipped, chunk, pos, line_start, lineno)
                pos = line_start
            skipped.flush(sc)
        elif _month_first(chunk, pos) and (m := _other_run().match(chunk, pos, size)):  # other programs' lines
            lineno += chunk.count(b"\n", pos, m.end())
            pos = m.end()
            continue
        end = chunk.find(b"\n", pos, size)
        lineno += 1
        line = chunk[pos:end].decode("utf-8", "replace")
        if other_program_line(line):  # fed, it would be ignored (not the kernel's): skip its parsing
            pos = end + 1
            continue
        for r in line_records(lineno, line):
            sc.feed(r)
        if sc.done:
            yield from sc.take()
        pos = end + 1
    return lineno
