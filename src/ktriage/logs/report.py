"""From the lines of one crash report to a Crash: every field the text holds.

The scanner decides where a report starts and ends; this module only reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence

from ktriage import linear
from ktriage.kernel_info import decode_taint, guess_distro
from ktriage.logs import arch as archmod
from ktriage.logs.formats import FORMATS, INFO_WITH_STACK, TITLE_REPLACEMENTS, Format
from ktriage.logs.frames import (
    ARM_REGS_LINE,
    EL1_VECTOR,
    SECTION_MARKERS,
    normalize,
    parse_arm_unwind,
    parse_frame,
    parse_interrupted,
)
from ktriage.logs.guilty import CALL_TRACE, FRAME_LINE, STACK_START, STACKS, extract_frame, first_guilty, strip_prefixes
from ktriage.logs.records import Record
from ktriage.model import CodeBytes, Crash, Event, Frame, Kernel, Location, Skipped, SourceSpan, Taint, Task

# Keywords that start a stack listing, and those that start a *secondary* one (KASAN's
# allocation/free stacks, lockdep's chains) whose frames are not the crashing stack.
_STACK_START = re.compile(
    r"^\s*(?:Call Trace:|Call trace:|Backtrace:|backtrace:|Call Trace\s*$|"
    r"Exception stack|\[ *<[0-9a-f]+> *\] \S+\+0x)"
)
_SECONDARY = re.compile(
    r"^(?:Allocated by task|Freed by task|Last potentially related work creation|"
    r"Second to last potentially related|The buggy address belongs|Memory state around|"
    r"allocated by task \d+|freed by task \d+|other info that might help|"
    r"the existing dependency chain|stack backtrace:|Uninit was (?:created|stored)|"
    r"Local variable .* created at|\s*Possible unsafe locking scenario|"
    r"NMI backtrace for cpu|Sending NMI from CPU|Showing all locks held|"
    r"Kernel panic - not syncing|Bytes b4 |Object [0-9a-f]+: |Redzone [0-9a-f]+: |"
    r"Padding [0-9a-f]+: |CPU: \d+ PID: \d+ Comm: .* (?:Not tainted|Tainted)(?!.*\bComm\b)|(?:INFO: )?Freed in \S)"
)
_TASK_LINE = linear.compile(  # `(.+?)` then `\s+`: quadratic in a run of spaces under `re`
    r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.+?)(?: Kdump: \S+)?\s+"
    r"(Not tainted|Tainted: [A-Z ]*?)\s*(?:-{4,}\s+[A-Z]?\s*)?"
    r"(\d+\.\d+[^\s]*)?(?:\s+(#.*))?$"
)
_OLD_TASK_LINE = re.compile(
    r"^Pid: (\d+), comm: (\S+)\s+(Not tainted|Tainted: [A-Z ]*?)\s+"
    r"(?:-{4,}\s+)?(\d+\.\d+\S*)\s+(#\S+)?\s*(.*)$"
)
_HUNG_TASK = re.compile(r"INFO: task (.+):(\d+) blocked")
# The second half of a split page-fault header, a few lines below `BUG: unable to handle kernel`.
_SPLIT_REST = (
    (re.compile(r"^NULL pointer dereference at "), "null-deref"),
    (re.compile(r"^paging request at "), "paging-request"),
)
_SPLIT_WINDOW = 8
# a function name with the compiler's clone suffixes (`.isra.0`, `.constprop.3`, `.part.1`, `.cold`)
_SUFFIXED_FUNC = linear.compile(r"[A-Za-z_$][\w$]*(?:\.(?:isra|constprop|part|cold|llvm|lto_priv)(?:\.\d+)?)+")
# Where reports without a `CPU: N PID: N Comm:` line name their task (each anchored to its own line form).
_TASK_SOURCES: tuple[re.Pattern[str], ...] = (
    # lockdep: "kswapd0/109 is trying to acquire lock:", "... just changed the state of lock:"
    re.compile(
        r"^(?P<comm>\S{1,64})/(?P<pid>\d{1,9}) (?:is trying to (?:acquire|release) lock|just changed the state of lock|"
        r"is leaving the kernel with locks still held|\[HC\d\[\d\]:SC\d\[\d\]:HE\d:SE\d\] takes:)"
    ),
    re.compile(r"BUG: scheduling while atomic: (?P<comm>\S{1,64})/(?P<pid>\d{1,9})/0x"),
    # 2.6-3.x x86/ARM/MIPS: "Process modprobe (pid: 4467, threadinfo ...)", "(pid: 2329, stack limit = ...)"
    re.compile(r"^Process (?P<comm>\S{1,64}) \(pid: (?P<pid>\d{1,9}), (?:threadinfo|stack limit|ti=)"),
    # powerpc 32-bit: "TASK = cfa5d000[950] 'bash' THREAD: cf9ce000"; 2.4: "TASK = c0197020[0] 'swapper' Last syscall: 120"
    re.compile(r"^TASK = [0-9a-f]{8,16}\[(?P<pid>\d{1,9})\] '(?P<comm>[^']{1,64})' (?:THREAD|Last syscall)"),
    re.compile(r"\bstuck for \d{1,6}s! \[(?P<comm>\S{1,64}):(?P<pid>\d{1,9})\]"),
    re.compile(r"^(?P<comm>\S{1,32}): page allocation failure"),  # 2.6 prints no task line after it
    # powerpc xmon's exception print: "    pid   = 0, comm = swapper/44"
    re.compile(r"^pid\s{1,4}= (?P<pid>\d{1,9}), comm = (?P<comm>\S{1,64})$"),
    # a WARNING whose `CPU: N PID: N Comm:` line is not in the text still names the pid (not the comm)
    re.compile(r"^WARNING: CPU: \d{1,5} PID: (?P<pid>\d{1,9}) at "),
)
# Where they name the kernel release.
_RELEASE_SOURCES: tuple[re.Pattern[str], ...] = (
    # lockdep's banner: "5.6.0-134515-ge1f6739c4a9f #21 Tainted: G OE", "4.5.0-ceph-10672-g5ef5edb #1 Not tainted"
    re.compile(
        r"^(?P<release>\d{1,2}\.\d{1,3}[^\s#]{0,80}) (?P<build>#\S{1,40})(?: \S{1,40})? (?:Not tainted|Tainted: )"
    ),
    # hung task 3.x+: "      Tainted: G         C O      4.19.75-v7l+ #1270" under the INFO line
    re.compile(
        r"^(?:Not tainted|Tainted: [A-Z ]{0,30}?)\s{1,12}(?P<release>\d{1,2}\.\d{1,3}\S{0,80}) (?P<build>#\S{1,40})"
    ),
    # powerpc: "REGS: cf9cfe40 TRAP: 0300 Not tainted (2.6.25-rc2-00102-g0640ebb)"
    re.compile(
        r"\bTRAP: [0-9a-f]{4}\s{1,8}(?:Not tainted|Tainted: [A-Z ]{0,30}?)\s{0,8}\((?P<release>\d{1,2}\.\d{1,3}[^)\s]{0,80})\)"
    ),
    # i386 2.6: "EFLAGS: 00010202   (2.6.22-12-generic #1)"
    re.compile(r"^EFLAGS: [0-9a-f]{8}\s{1,8}\((?P<release>\d{1,2}\.\d{1,3}\S{0,80}) (?P<build>#\S{1,40})\)"),
    # 32-bit ARM before 3.10: "CPU: 0    Not tainted  (3.4.90+ #1)"
    re.compile(
        r"^CPU: \d{1,5}\s{1,8}(?:Not tainted|Tainted: [A-Z ]{0,30}?)\s{1,8}\((?P<release>\d{1,2}\.\d{1,3}\S{0,80}) (?P<build>#\S{1,40})\)"
    ),
)


# A module's version magic: `<mod>: version magic '4.4.0-ABC SMP mod_unload ' should be '4.15.0-XYZ SMP mod_unload '`
# (the running kernel's is the one after "should be"), or `vermagic=5.10.0-46-amd64 SMP mod_unload modversions`.
_VERMAGIC = re.compile(
    r": version magic '[^']{0,120}' should be '(?P<should>\d{1,2}\.\d{1,3}[^\s']{0,80}) [^']{0,120}'|"
    r"\bvermagic[=:] {0,16}(?P<vermagic>\d{1,2}\.\d{1,3}\S{0,80}) (?:SMP|preempt|mod_unload|modversions)\b"
)
CONTEXT_VERMAGIC = 300


# The architecture a distribution writes into its kernel release (`.el8.aarch64`, Debian `-amd64`), first match wins.
_RELEASE_ARCH = (
    ("x86_64", "x86_64"),
    ("x86_64", "-amd64"),
    ("arm64", "aarch64"),
    ("arm64", "-arm64"),
    ("ppc64le", "ppc64le"),
    ("ppc64", "ppc64"),
    ("s390x", "s390x"),
    ("i386", ".i686"),
    ("i386", "-686"),
    ("arm", "armv7"),
    ("arm", "-armmp"),
)


# SLUB debug's object tracking lines: who allocated and who freed the corrupted object
_SLUB_TRACK = re.compile(r"^(?:INFO: )?(?:Allocated|Freed) in \S+(?: \[[\w\-]{1,64}\])? age=\d+ cpu=\d+ pid=\d+")


def unread_fields(crash: Crash) -> list[Skipped]:
    """Fields of a crash read from a log that the text did not give, with why: the report's `not analyzed`."""
    out: list[Skipped] = []
    if crash.guilty_frame is None:
        out.append(Skipped("log.guilty", "no call trace, IP line or header names a function that is not generic"))
    if crash.arch is None:
        out.append(
            Skipped("log.arch", "no register dump, frame, release string or hardware line tells the architecture")
        )
    if crash.kernel.release is None:
        out.append(
            Skipped("log.release", "no task line, lockdep header or `Linux version` banner gives the kernel release")
        )
    if crash.task.comm is None and crash.task.pid is None:
        out.append(Skipped("log.task", "the report names no task (no `CPU: N PID: N Comm:`, `Pid:` or `Process` line)"))
    return out


def _first_named(sources: Sequence[re.Pattern[str]], lines: Sequence[str]) -> re.Match[str] | None:
    """The first line one of `sources` matches (by line, then by source)."""
    for line in lines:
        s = line.strip()
        for rx in sources:
            m = rx.search(s)
            if m:
                return m
    return None


_RELEASE = re.compile(r"\bLinux version (\d+\.\d+\S*) .*?(#\d+.*)?$")
_HARDWARE = re.compile(r"^Hardware name: (.*)$")
_MODULES = re.compile(r"^Modules linked in:(.*)$")
_PANIC = linear.compile(r"Kernel panic - not syncing: (.*?)\s*(?:\]---)?$")
_CODE = re.compile(r"^\s*Code: (.*)$")
_RELATED = re.compile(
    r"Attempt to release TCP socket in state \d+|refcount_t: |list_(?:add|del) corruption|"
    r"page allocation failure|Out of memory: Kill|Killed process|BUG: Bad page|unregister_netdevice: waiting|"
    r"WARNING: CPU: |WARNING: at |------------\[ cut here \]|hrtimer: interrupt took|"
    r"NETDEV WATCHDOG|Transmit timed? ?out|link is not ready|blk_update_request: I/O error|"
    r"EXT4-fs error|XFS \(.*\): (?:Corruption|metadata I/O error)|nfs: server .* not responding|"
    r"rcu_sched|Machine check events logged|\[Hardware Error\]|EDAC .* error|"
    r"Memory failure: |mce: |segfault at|traps: .* general protection|nf_conntrack: table full"
)
# The kind of a report only the catch-all entry matched, by its keyword.
_FALLBACK_KIND = {"WARNING": "warning", "BUG": "bug", "INFO": "unknown"}

_SOFTIRQ_FRAMES = re.compile(
    r"^(?:__do_softirq|handle_softirqs|do_softirq|run_ksoftirqd|net_rx_action|"
    r"run_timer_softirq|tasklet_action|call_timer_fn|__run_timers|blk_done_softirq)"
)
_HARDIRQ_FRAMES = re.compile(
    r"^(?:handle_irq|do_IRQ|common_interrupt|__handle_irq_event_percpu|"
    r"handle_irq_event|gic_handle_irq|el1_irq|__sysvec_|sysvec_|"
    r"handle_edge_irq|handle_fasteoi_irq|generic_handle_irq)"
)
_NMI_FRAMES = re.compile(r"^(?:do_nmi|default_do_nmi|nmi_handle|exc_nmi|asm_exc_nmi)")


def parse_frames(lines: Sequence[str]) -> list[Frame]:
    """The crashing stack: frames of the first stack listing, up to a secondary listing.

    A register dump nested in the listing (an interrupt or exception taken inside the stack:
    `</IRQ>` then `RIP: 0010:native_safe_halt+0xb/0x10`, arm64 the frame after `el1h_64_irq`,
    ppc64 `--- interrupt: 900 at func`) gives the interrupted PC: a frame in its place, marked
    `interrupted`. Only inside a listing, right after a frame or a `<IRQ>`-style marker: the
    oops's own `RIP:` line (before `Call Trace:`, read by `arch.parse_ip`) is not a frame.
    """
    frames: list[Frame] = []
    section = "task"
    started = False
    adjacent = False  # the previous non-empty line was a frame or a section marker
    arm_caller: Frame | None = None  # 32-bit ARM: the last line's caller, the listing's bottom frame so far
    for line in lines:
        s = line.strip()
        if started and _SECONDARY.match(s):
            break
        arm = parse_arm_unwind(s, section)
        if arm is not None:
            frames.append(arm[0])
            arm_caller, started = arm[1], True
            continue
        if arm_caller is not None and not ARM_REGS_LINE.match(s):
            frames.append(arm_caller)  # the listing ended: its last caller is a frame too
            arm_caller = None
        marked = False
        for marker, sect in SECTION_MARKERS.items():
            if s.startswith(marker):
                section = sect
                s = s[len(marker) :].strip()
                marked = True
        if s.startswith("--- interrupt:"):
            section = "task"
        if s.startswith("Exception stack("):
            section = "exception"
        if started and adjacent and s:
            f = parse_interrupted(s, section)
            if f is not None:
                frames.append(f)
                adjacent = False
                continue
        f = parse_frame(s, section) if s else None
        if f:
            if (
                frames
                and f.reliable
                and not f.inline
                and frames[-1].symbol
                and EL1_VECTOR.match(normalize(frames[-1].symbol))
            ):
                f = dataclasses.replace(f, interrupted=True)
            frames.append(f)
            started = True
        elif _STACK_START.match(s):
            started = True
        if s or marked:
            adjacent = f is not None or marked
    if arm_caller is not None:
        frames.append(arm_caller)
    return frames


# Where a hung-task report moves on to other CPUs and tasks (hung_task_all_cpu_backtrace, lockdep).
_OTHER_CPUS = re.compile(
    r"^\s*(?:NMI backtrace for cpu|Sending NMI |Showing all locks held|"
    r"\d+ locks? held by )"
)


def _own_lines(fmt: Format, lines: Sequence[str]) -> list[str]:
    """The lines the crash's IP, registers and code bytes are read from. A hung task is blocked,
    not executing: the IP lines further down a hung-task report are other CPUs' (NMI backtraces),
    so its part ends where those begin."""
    if fmt.kind != "hung-task":
        return list(lines)
    for i, line in enumerate(lines):
        if i and _OTHER_CPUS.match(line):
            return list(lines[:i])
    return list(lines)


def _context(frames: Sequence[Frame], comm: str | None, pid: int | None) -> str:
    """Where the CPU was: the first interrupt-entry frame below the crash tells."""
    for f in frames:
        if not f.reliable or not f.symbol:
            continue
        n = normalize(f.symbol)
        if _NMI_FRAMES.match(n) or f.section == "nmi":
            return "nmi"
        if _SOFTIRQ_FRAMES.match(n):
            return "softirq"
        if _HARDIRQ_FRAMES.match(n):
            return "hardirq"
    if pid == 0 or (comm or "").startswith("swapper"):
        return "idle"
    if comm or pid is not None:
        return "process"
    return "unknown"


def _modules(lines: Sequence[str]) -> tuple[str, ...]:
    for i, line in enumerate(lines):
        m = _MODULES.match(line.strip())
        if m:
            text = m.group(1)
            for cont in lines[i + 1 : i + 20]:
                if (
                    cont.startswith(" ")
                    and not re.match(r"\s*(CPU|Pid|Hardware|RIP|pc|---|\[)", cont)
                    and re.fullmatch(r"[\s\w\-\[\]()+,]+", cont)
                ):
                    text += " " + cont
                else:
                    break
            mods = re.findall(r"([\w\-]+)(?:\([A-Z+\-]+\))?", text)
            return tuple(m for m in mods if m not in ("last", "unloaded"))
    return ()


def _code(lines: Sequence[str], arch: str | None) -> CodeBytes | None:
    for line in lines:
        m = _CODE.match(line)
        if not m:
            continue
        try:
            from ktriage.insn.codeline import parse_code_line  # filled by the insn package
        except ImportError:
            return CodeBytes(
                b"", None, arch or "unknown", complete=False, raw=m.group(1), note="Code: decoder not available"
            )
        return parse_code_line(m.group(1), arch or "x86_64")
    return None


def select_format(fmt: Format, lines: Sequence[str]) -> tuple[Format, re.Match[str], re.Match[str] | None]:
    """The first entry, from the one the scanner matched on, whose header matches the first line
    and whose `report` pattern (when it has one) matches the report: a report that lacks the
    text a title needs falls through to a less specific entry (in the end, the catch-all)."""
    text = "\n".join(lines)
    start = FORMATS.index(fmt) if fmt in FORMATS else 0
    for f in FORMATS[start:] + FORMATS[:start]:
        m = f.header.search(lines[0])
        if not m:
            continue
        rm = f.report.search(text) if f.report is not None else None
        if f.report is not None and rm is None:
            continue
        if f.fallback:
            later = _later_header(lines, m.group(1).split(":", 1)[0], text)
            if later:
                return later
        return f, m, rm
    m = fmt.header.search(lines[0])
    assert m is not None
    return fmt, m, None


def _later_header(
    lines: Sequence[str], keyword: str, text: str
) -> tuple[Format, re.Match[str], re.Match[str] | None] | None:
    """A header line cut short (`INFO: t`) is often printed again whole a few lines later:
    the first known entry of the same keyword further down the report names it."""
    for line in lines[1:_LATER_HEADER_LINES]:
        if keyword + ":" not in line:
            continue
        for f in FORMATS:
            if f.fallback:
                continue
            m = f.header.search(line)
            if m and m.group(0).startswith(keyword):
                rm = f.report.search(text) if f.report is not None else None
                if f.report is None or rm is not None:
                    return f, m, rm
    return None


_LATER_HEADER_LINES = 30


_QUESTIONABLE = re.compile(r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)?\? ")


def _stack_lines(lines: Sequence[str]) -> list[str]:
    """Report lines for the guilty-frame walk: unreliable frames (x86 `? func`, ppc `(unreliable)`)
    never count, neither as a frame nor as the anchor a walk looks for (a stale
    `? asm_sysvec_apic_timer_interrupt` is no interrupt entry)."""
    return [ln for ln in lines if not ln.rstrip().endswith("(unreliable)") and not _QUESTIONABLE.match(ln)]


def _guilty(fmt: Format, groups: dict[str, str], lines: Sequence[str]) -> tuple[str | None, bool]:
    """(guilty function, stack polluted by fault injection) by the format's stack walk."""
    spec = STACKS.get(fmt.stack)
    if spec is None:
        return None, False
    head = groups.get("h_func") if fmt.stack in ("header", "header_trace") else None
    return extract_frame(_stack_lines(lines), spec, head, fmt.skip)


# Stack walks of reports whose faulting IP is the crash's own instruction (not a stall's sample).
_IP_STACKS = ("ip", "ip_only", "trace", "warning", "header")
# kinds whose IP is the instruction that faulted or the code that looped (not a BUG()/WARN() check site)
_IP_FAULT_KINDS = ("paging-request", "null-deref", "gpf", "soft-lockup", "hard-lockup")


def _frame_at(frames: Sequence[Frame], address: int) -> str | None:
    """The function of the listed frame at `address` (`?` frames too: the address says it is that one)."""
    for f in frames:
        if f.address == address and f.symbol:
            return strip_prefixes(normalize(f.symbol))
    return None


def sanitize_title(title: str) -> str:
    """Replace what varies between runs of one bug (addresses, offsets, numbers) by placeholders."""
    for rx, rep in TITLE_REPLACEMENTS:
        prev = None
        while prev != title:
            prev = title
            title = rx.sub(rep, title)
    return title


def _title(fmt: Format, groups: dict[str, str], func: str | None) -> tuple[str, bool]:
    """Fill the format's title; a missing function marks the report corrupted."""
    title = fmt.title
    missing = False
    for k, v in groups.items():
        if k.startswith("r") and re.fullmatch(r"[\w.$]+", v):
            v = strip_prefixes(normalize(v))
        title = title.replace("{" + k + "}", v)
    if "{func}" in title:
        if func:
            title = title.replace("{func}", func)
        else:
            title = title.replace("{func}", "corrupted")
            missing = True
    if re.search(r"\{[hr]\d\}", title):
        title = re.sub(r"\{[hr]\d\}", "corrupted", title)
        missing = True
    return sanitize_title(title.strip()), missing


# Reports whose stacks are other tasks' read by the detecting CPU (an RCU stall's preempted readers,
# `sched_show_task()` of a task running elsewhere): an all-`?` trace there is stale return addresses
# topped by the scheduler (`? __schedule+0x11d7`), not an unwinder without frame pointers, and names no
# guilty function. (A hung task's all-`?` trace on an old kernel does: ddnet issue 401, `walk_component`.)
_OTHER_TASK_STACKS = ("rcu-stall",)

_TS_IN_TITLE = re.compile(r"\[ *\d+\.\d+\]")
_INFO_WITH_STACK = re.compile("|".join(re.escape(text) for text, _ in INFO_WITH_STACK))


def interleaved_at(region: Sequence[Record]) -> int | None:
    """Index of the first line inside a report where a message with a stack of its own (a vmalloc
    failure, fault injection) starts, when the lines carry no caller id to tell the two apart: the
    frames after it may be either's, so the guilty frame is read from the lines before it."""
    if region[0].caller:
        return None
    for i, rec in enumerate(region[1:], 1):
        if _INFO_WITH_STACK.search(rec.text):
            return i
    return None


def stack_corruption(lines: Sequence[str]) -> str | None:
    """Why a report that should carry a stack does not (None: it does).

    Each stack keyword (`Call Trace:`, `Allocated by task`, `backtrace:`...) must be followed,
    within 15 lines and before the next keyword, by at least one frame; and one keyword must be there.
    """
    has_stack = False
    seen: set[str] = set()
    for i, line in enumerate(lines):
        m = STACK_START.search(line)
        if not m or m.re.pattern in seen:
            continue
        key = m.group(0)
        if key in seen:
            continue
        seen.add(key)
        after = lines[i + 1 :]
        if len(after) < 3:
            return "the call trace is cut off"
        ok = False
        for nxt in after[:15]:
            if STACK_START.search(nxt):
                break
            if "(stack is not available)" in nxt or any(rx.match(nxt) for rx in FRAME_LINE):
                ok = True
                break
        if not ok:
            return "no frames in a stack trace"
        has_stack = True
    return None if has_stack else _NO_STACK


_NO_STACK = "no stack trace in the report"


TRUNCATED_TRACE = "the log ends inside the call trace"

# Where a complete stack listing may stop: syscall entry, thread start, and (conservatively, a cut
# after them is not reported) interrupt and exception entry.
_ENTRY_FRAME = re.compile(
    r"^(?:entry_|ret_from_|system_call|int_ret_from_sys_call|sysenter_dispatch|tracesys|\w*_fastpath|"
    r"do_syscall_64|do_fast_syscall|do_int80|start_secondary|secondary_startup|start_kernel|x86_64_start_|"
    r"rest_init|cpu_startup_entry|kthread$|kernel_init$|el0t?_|el0_svc|el1h?_\d+_(?:irq|sync)|ret_fast_syscall|"
    r"work_pending|syscall_exit|system_call_exception|__kernel_thread|handle_exception|vector_swi|"
    r"__do_softirq|irq_exit|asm_|common_interrupt|apic_timer_interrupt|page_fault|async_page_fault)"
)
_OPEN_SECTION = re.compile(r"^\s*<(?:IRQ|NMI|TASK|SOFTIRQ|#DF)>\s*$")


def ends_inside_trace(lines: Sequence[str]) -> str | None:
    """Where a report's text stops in the middle of a stack listing: its last line is a frame
    that is not where a stack bottoms out (syscall/interrupt entry, thread start), or an opened
    `<IRQ>`/`<TASK>` section. Returns that frame (`func+0x10/0x40 [mod]`) or section, else None.
    (A kmemleak backtrace is cut at 16 entries by design: the caller leaves memory leaks out.)"""
    for line in reversed(lines):
        s = line.strip()
        if not s:
            continue
        if _OPEN_SECTION.match(s):
            return s
        f = parse_frame(s)
        if f is None or not f.symbol or _ENTRY_FRAME.match(normalize(f.symbol)):
            return None
        return str(Location(f.symbol, f.offset, f.size, f.module))
    return None


def _bucket(kind: str, title: str, guilty: str | None, frames: Sequence[Frame]) -> str:
    """Same bug on another machine/boot/build -> same id: only names, never addresses or offsets."""
    parts = [kind, re.sub(r"\b0x[0-9a-f]+\b|\b\d+\b", "N", title)]
    if kind in (
        "null-deref",
        "paging-request",
        "gpf",
        "bug",
        "invalid-opcode",
        "kasan",
        "kfence",
        "ubsan",
        "list-corruption",
        "refcount",
        "divide-error",
        "warning",
        "stack-protector",
        "usercopy",
    ):
        names = [normalize(f.symbol) for f in frames if f.symbol and f.reliable]
        if guilty and guilty in names:
            names = names[names.index(guilty) + 1 :]
        parts += names[:2]
    return "kt1-" + hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


def crash_bucket(crash: Crash) -> str:
    """The bucket id of a crash as this version's rules compute it (the fleet recomputes the ids of stored
    reports with it after the rules change: `ktriage fleet rebucket`)."""
    return _bucket(crash.kind, crash.title, crash.guilty_frame, crash.frames)


def _panic(lines: Sequence[str]) -> str | None:
    """What the report's `Kernel panic - not syncing:` line says (a trailer after it is then not attached)."""
    for line in lines:
        m = _PANIC.search(line)
        if m:
            return str(m.group(1))
    return None


def _split_rest(header: re.Match[str], lines: Sequence[str]) -> tuple[str, int] | None:
    """The kind the second half of a split `BUG: unable to handle kernel` header gives, and how many lines later
    it was printed: it is a separate printk, and other lines (syslog, another CPU) can come in between, leaving
    `BUG: unable to handle kernel` / ... / `NULL pointer dereference at 0000000000000050`."""
    if not header.group(0).rstrip().endswith("handle kernel"):
        return None
    for n, ln in enumerate(lines[1:_SPLIT_WINDOW], 1):
        rest = next((k for rx, k in _SPLIT_REST if rx.match(ln)), None)
        if rest is not None:
            return rest, n
    return None


def _kind(fmt: Format, header: re.Match[str], lines: Sequence[str], split: tuple[str, int] | None) -> str:
    """The crash's kind: the format's, the split header's second half's (`split`, from _split_rest), or a
    corrupted list or a refcount the text names."""
    kind = fmt.kind or _FALLBACK_KIND.get(lines[0][header.start(1) :].split(":", 1)[0], "unknown")
    if split is not None:
        kind = split[0]
    joined = "\n".join(lines[:80])
    if kind in ("warning", "bug", "gpf", "paging-request") and re.search(r"list_(?:add|del)\w* corruption", joined):
        kind = "list-corruption"
    if kind == "warning" and re.search(r"refcount_t: ", joined):
        kind = "refcount"
    return kind


def build_crash(
    region: Sequence[Record],
    fmt: Format,
    header: re.Match[str],
    path: str,
    before: Sequence[Record] = (),
    cut: bool = False,
    source_format: str = "log",
    eof: bool = False,
    title_only: bool = False,
) -> Crash:
    """One report's records (header first) -> Crash. `before` holds earlier records of the same log;
    `cut`: the report was still open when the log ended or the machine rebooted; `eof`: the input
    itself ended inside the report. `title_only`: a report past the number a run reports in full is only
    counted by title (`--max-crashes`): the Crash holds its kind, title, panic line and source span."""
    lines = [r.text for r in region]
    # one machine, one architecture: the log's lines just before the report tell it when the report does not
    # (a panic line whose oops scrolled away, a report cut to its header)
    arch = None if title_only else archmod.detect_arch(lines)
    arch_from_context = (
        not title_only and arch is None and (arch := archmod.detect_arch([r.text for r in before[-100:]])) is not None
    )
    frame_lines = lines[1:] if fmt.stack != "none" else lines
    frames = [] if title_only else parse_frames(frame_lines)  # a title needs them only in the two cases below

    mixed = interleaved_at(region)
    fmt, header, rmatch = select_format(fmt, lines[:mixed] if mixed else lines)
    own = _own_lines(fmt, lines)
    regs = {} if title_only else archmod.parse_registers(own, arch)
    ip = archmod.parse_ip(own)
    groups: dict[str, str] = {f"h{i}": g or "" for i, g in enumerate(header.groups(), 1)}
    if "{FUNC}" in fmt.header.pattern or fmt.stack in ("header", "header_trace", "warning"):
        funcs = [
            g
            for g in header.groups()
            if g and re.fullmatch(r"[A-Za-z_$.][\w.$]*", g) and "." not in g[1:] and not g.endswith((".c", ".h"))
        ]
        if funcs:
            groups["h_func"] = funcs[-1]
        elif fmt.stack == "warning":
            # a WARN in a compiler-split function: `... bpf_jit_comp.c:961 __arch_prepare_bpf_trampoline.isra.0+0xe18`
            funcs = [g for g in header.groups() if g and _SUFFIXED_FUNC.fullmatch(g)]
            if funcs:
                groups["h_func"] = funcs[-1]
    if rmatch is not None:
        groups.update({f"r{i}": g or "" for i, g in enumerate(rmatch.groups(), 1)})

    guilty, polluted = _guilty(fmt, groups, lines[:mixed] if mixed else lines)
    notes: list[str] = []  # how a value was read when it did not come from its usual field
    if arch_from_context:
        notes.append(f"arch {arch}: from the log's lines before the report; the report itself does not show it")
    if guilty is None and fmt.stack in ("warning", "trace") and not any(CALL_TRACE.search(ln) for ln in lines):
        # A WARN quoted in a commit message: frame lines under the header, without the `RIP:` line
        # and the `Call Trace:` keyword. Only whole-line frames count (`func+0x12/0x40`).
        frames = frames or parse_frames(frame_lines)
        guilty = first_guilty(
            [f.symbol for f in frames if f.symbol and f.reliable and not f.inline], fmt.skip + STACKS["warning"].skip
        )
    lockup = fmt.kind in ("soft-lockup", "hard-lockup")  # the sampled IP is the looping code
    if guilty is None and ip is not None and ip.symbol and (fmt.stack in _IP_STACKS or lockup or fmt.fallback):
        # the stack names nothing usable (none printed, cut off, all generic): the faulting IP does
        guilty = first_guilty([ip.symbol], fmt.skip)
        if guilty is not None:
            notes.append(f"guilty frame {guilty}: from the faulting IP line; no call trace names a function")
    if fmt.stack == "address" and groups.get("h1"):
        guilty = _frame_at(frames or parse_frames(frame_lines), int(groups["h1"], 16))
    if guilty is None and fmt.stack == "none" and "{r1}" in fmt.title and groups.get("r1"):
        guilty = strip_prefixes(normalize(groups["r1"]))
    title, missing = _title(fmt, groups, guilty)
    if title_only:
        span = SourceSpan(path, region[0].lineno, region[-1].lineno, source_format)
        kind = _kind(fmt, header, lines, _split_rest(header, lines))
        return Crash(kind=kind, title=title, source=span, panic=_panic(lines))
    if (
        guilty is None
        and ip is not None
        and ip.symbol
        and (fmt.kind in _IP_FAULT_KINDS or f" at {ip.symbol}+" in lines[0])
        and not any(f.symbol for f in frames)
    ):
        # The faulting IP is in generic code (an allocator, a string helper) and the text holds no call trace
        # to name its caller: the function that faulted (or looped), or the one the header names (`Kernel BUG
        # at kfree+0x3e3/0x490`), is the only evidence there is. Not for a BUG()/WARN() elsewhere: there the IP
        # is the checking helper (`usercopy_abort`, `__list_add_valid`), not what failed. The title keeps
        # syzkaller's convention (no usable frame: `corrupted`); the guilty frame says where it happened.
        guilty = strip_prefixes(normalize(ip.symbol))
        notes.append(f"guilty frame {guilty}: the faulting IP, in generic code; the text holds no call trace")
    if guilty is None and fmt.stack == "warning" and groups.get("h_func"):
        # no `RIP:`/`pc :` line (32-bit ARM and MIPS print none for a WARN) and no usable stack: the function
        # the WARNING header names is where it fired. The title keeps syzkaller's convention (a WARN without
        # its stack is `corrupted`); the guilty frame says what the header says.
        guilty = first_guilty([groups["h_func"]], fmt.skip)
        if guilty is not None:
            notes.append(f"guilty frame {guilty}: from the WARNING header; no IP line or call trace names one")
    if guilty is None and fmt.frame_from_title:
        m = re.search(r" in ([A-Za-z_][\w.]*)", title)
        guilty = strip_prefixes(normalize(m.group(1))) if m else None
    if guilty is None and "h_func" in groups and fmt.stack == "none":
        guilty = normalize(groups["h_func"])

    comm = pid = cpu = None
    release = build = hardware = None
    taint_flags = ""
    for line in lines + [r.text for r in before[-60:]]:
        m = _TASK_LINE.search(line)
        if m and comm is None:
            cpu, pid, comm = int(m.group(1)), int(m.group(2)), m.group(3).strip()
            taint_flags = "" if m.group(4) == "Not tainted" else m.group(4)[len("Tainted: ") :].strip()
            release, build = m.group(5), m.group(6)
            continue
        m = _OLD_TASK_LINE.match(line.strip())
        if m and comm is None:
            pid, comm = int(m.group(1)), m.group(2)
            taint_flags = "" if m.group(3) == "Not tainted" else m.group(3)[len("Tainted: ") :].strip()
            release, build, hardware = m.group(4), m.group(5), (m.group(6) or None)
            continue
        m = _HARDWARE.match(line.strip())
        if m and hardware is None:
            hardware = m.group(1).strip()
    if comm is None:
        m = _first_named(_TASK_SOURCES, lines)
        if m:
            comm = m.group("comm") if "comm" in m.re.groupindex else None
            pid = int(m.group("pid")) if "pid" in m.re.groupindex else None
    if release is None:
        m = _first_named(_RELEASE_SOURCES, lines[:40])
        if m:
            release = m.group("release")
            build = build or (m.group("build") if "build" in m.re.groupindex else None)
    if fmt.kind == "hung-task":
        m = _HUNG_TASK.search(lines[0])
        if m:
            comm, pid = m.group(1), int(m.group(2))
    if release is None:
        for r in reversed(before):
            m = _RELEASE.search(r.text)
            if m:
                release, build = m.group(1), build or m.group(2)
                break
    if release is None:
        # last resort: a module's version magic (kernel/module.c) names the release modules must be built for
        for text in reversed([r.text for r in before[-CONTEXT_VERMAGIC:]] + lines):
            m = _VERMAGIC.search(text)
            if m:
                release = m.group("should") or m.group("vermagic")
                notes.append(f"release {release}: from a module's version magic line; no task line or banner gives it")
                break
    if arch is None and release:
        for a, key in _RELEASE_ARCH:
            if key in release:
                arch = a
                break
    if cpu is None:
        m = re.search(r"\bCPU:? ?#?(\d+)\b", "\n".join(lines[:40]))
        if m:
            cpu = int(m.group(1))

    fault = archmod.parse_fault_address(lines, regs)
    # the register the hardware wrote the faulting address to, where the dump prints it
    fault_reg = "CR2" if arch in ("x86_64", "i386") else "DAR" if arch in ("ppc64", "ppc64le") else None
    if fmt.kind in ("null-deref", "paging-request") and fault_reg in regs:
        if fault is None:
            fault = regs[fault_reg]
        elif fault != regs[fault_reg] and fault & 0xFFFFFFFF != regs[fault_reg] & 0xFFFFFFFF:
            # the header is printed from the faulting access; a dump's CR2 can be a later fault's (syzkaller 480)
            notes.append(
                f"fault address {fault:#x} from the header; the register dump's {fault_reg} says {regs[fault_reg]:#x}"
            )
    access, errcode = archmod.parse_access(lines, arch)

    panic = _panic(lines)

    split = _split_rest(header, lines)
    kind = _kind(fmt, header, lines, split)
    if split is not None:
        notes.append(
            f"kind {split[0]}: from the header's second half, printed {split[1]} lines later after other messages"
        )
        if guilty is None and ip is not None and ip.symbol:
            guilty = first_guilty([ip.symbol], fmt.skip)

    related_recs = [r for r in before if _RELATED.search(r.text)]
    head_prefix = region[0].text[: header.start()] if header.string == region[0].text else ""
    rm = _RELATED.search(head_prefix)
    if rm:
        related_recs.append(Record(region[0].lineno, head_prefix[rm.start() :].strip(" “”\"'。,，;"), region[0].ts))
    related = tuple(Event("log", r.text.strip(), r.lineno) for r in related_recs[-10:])
    related += tuple(Event("slab", r.text.strip(), r.lineno) for r in region if _SLUB_TRACK.match(r.text))
    if guilty is None and frames and not any(f.reliable for f in frames) and fmt.kind not in _OTHER_TASK_STACKS:
        # old kernels without frame pointers print every frame with `?`: still the best evidence there is
        guilty = first_guilty([f.symbol for f in frames if f.symbol and not f.inline], fmt.skip)
        if guilty is not None:
            notes.append(
                f"guilty frame {guilty}: every frame of the trace is marked `?` (unreliable); the first one taken"
            )
    related += tuple(Event("note", n, region[0].lineno) for n in notes)

    corrupted, reason = fmt.corrupted, "the report format is known to be incomplete" if fmt.corrupted else None
    if not corrupted and _TS_IN_TITLE.search(title):
        corrupted, reason = True, "a timestamp is merged into the title"
    if mixed and not corrupted:
        corrupted, reason = True, f"another message's stack is interleaved from line {region[mixed].lineno}"
    if missing and not corrupted:
        corrupted, reason = True, "no function could be read for the title"
    if polluted and not corrupted:
        corrupted, reason = True, "fault injection output is mixed into the stack"
    if not corrupted and not fmt.no_stack and not fmt.fallback:
        why = stack_corruption(lines)
        if why == _NO_STACK and sum(f.reliable and not f.inline for f in frames) >= 3:
            why = None  # frames listed without the `Call Trace:` keyword (an excerpt in a commit message)
        if why:
            corrupted, reason = True, why
    # A log that ends inside the call trace still names the crash (the top frames came first);
    # one that ends before any frame does not.
    if cut and not corrupted and not fmt.no_stack and fmt.stack != "none" and not any(f.reliable for f in frames):
        corrupted, reason = True, "the log ends inside the report, before its call trace"

    # The input ends inside the call trace (a console cut by a reset, a vmcore-dmesg that stops
    # mid-print, a paste). syzkaller's convention, which the corpus scores, keeps such a report
    # uncorrupted: its top frames, which name the crash, came first. Flagging it `corrupted` would
    # disagree with 8 of the corpus's 365 reports (-2.2 points: excerpts cut after the frame that
    # matters), so the reader says it with an event instead: every renderer lists it, `corrupted`
    # keeps its meaning (the title cannot be trusted).
    cut_at = ends_inside_trace(lines) if eof and kind != "memory-leak" else None
    if cut_at:
        last = next(r for r in reversed(region) if r.text.strip())
        related += (Event("truncated", f"{TRUNCATED_TRACE}, after {cut_at}", last.lineno),)

    return Crash(
        kind=kind,
        title=title,
        source=SourceSpan(path, region[0].lineno, region[-1].lineno, source_format),
        guilty_frame=guilty,
        fault_address=fault,
        access=access,
        error_code=errcode,
        ip=ip,
        kernel=Kernel(release, build, guess_distro(release, build), hardware),
        arch=arch,
        task=Task(comm, pid, cpu),
        context=_context(frames, comm, pid),
        taint=Taint(taint_flags, decode_taint(taint_flags.replace(" ", ""))),
        modules=_modules(lines),
        registers=regs,
        code=_code(archmod.kernel_lines(own), arch),  # not a user-mode block's `Code:`
        frames=tuple(frames),
        panic=panic,
        related_events=related,
        corrupted=corrupted,
        corrupted_reason=reason,
        bucket=_bucket(kind, title, guilty, frames),
        lines=tuple(lines),
    )
