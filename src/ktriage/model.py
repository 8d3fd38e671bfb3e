"""The data every part of ktriage exchanges.

A *Crash* is the centre: one immutable record per crash, produced by every source
(log reader, `crash` output reader, vmcore reader) and read by everything downstream.
Analyzers turn a Crash (plus whatever else is at hand: debug info, a vmcore) into
*Findings*; the report groups them per crash. Keeping these as plain frozen dataclasses
means a source cannot half-fill a crash that an analyzer then mutates behind its back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The crash kinds ktriage knows. Stable strings: they are part of the JSON contract.
KINDS: dict[str, str] = {
    "null-deref": "kernel NULL pointer dereference",
    "paging-request": "kernel paging request to a bad address",
    "gpf": "general protection fault (often a non-canonical address)",
    "bug": "BUG()/BUG_ON() assertion (kernel BUG at file:line)",
    "invalid-opcode": "invalid opcode not raised by BUG()",
    "warning": "WARN()/WARN_ON() (a panic only with panic_on_warn)",
    "soft-lockup": "CPU stuck in kernel code without scheduling",
    "hard-lockup": "CPU stuck with interrupts off (NMI watchdog)",
    "rcu-stall": "RCU grace period not completing",
    "hung-task": "task blocked in D state longer than hung_task_timeout_secs",
    "kasan": "KASAN memory-safety report",
    "kfence": "KFENCE memory-safety report",
    "kmsan": "KMSAN uninitialized-value report",
    "kcsan": "KCSAN data-race report",
    "ubsan": "UBSAN undefined-behaviour report",
    "list-corruption": "linked list corruption detected by CONFIG_DEBUG_LIST",
    "refcount": "refcount_t saturation/underflow/use-after-free",
    "stack-protector": "stack canary corrupted",
    "stack-guard": "kernel stack overflow (guard page hit)",
    "usercopy": "hardened usercopy violation",
    "bad-page": "page allocator found a page in a bad state",
    "slab-corruption": "slab allocator found a corrupted object or free list",
    "divide-error": "division by zero",
    "double-fault": "double fault",
    "mce": "machine check exception (hardware error)",
    "lockdep": "lock debugging report (lockdep's validator, spinlock/rwlock debug checks)",
    "atomic-sleep": "sleeping function called from atomic context",
    "memory-leak": "kmemleak report",
    "oom": "out of memory",
    "page-alloc-failure": "page allocation failure",
    "panic": "explicit kernel panic",
    "unknown": "crash of an unrecognized kind",
}

CONTEXTS = ("process", "softirq", "hardirq", "nmi", "idle", "unknown")


@dataclass(frozen=True)
class SourceSpan:
    """Where a crash was read from: file and 1-based line numbers in the *input* as given."""

    path: str
    first_line: int
    last_line: int
    format: str = "log"  # log, syslog, journal, crash-output, vmcore, ...


@dataclass(frozen=True)
class Location:
    """A code address as an oops prints it: `func+0x2d/0x110 [module]` plus the raw address if known."""

    symbol: str | None = None
    offset: int | None = None
    size: int | None = None
    module: str | None = None
    address: int | None = None

    def __str__(self) -> str:
        if not self.symbol:
            return f"{self.address:#x}" if self.address is not None else "?"
        s = self.symbol
        if self.offset is not None:
            s += f"+{self.offset:#x}"
            if self.size is not None:
                s += f"/{self.size:#x}"
        if self.module:
            s += f" [{self.module}]"
        return s


@dataclass(frozen=True)
class Frame(Location):
    """One call trace entry. `reliable` is False for `?` entries (stack scan leftovers).

    `interrupted` marks the PC an interrupt or exception stopped, as a register dump nested in the
    trace printed it (x86 `RIP: 0010:func+off/size` after `</IRQ>` or `asm_sysvec_*`, arm64 the
    frame after `el1h_64_irq` or one marked `(P)`, ppc64 `--- interrupt: 900 at func`): the exact
    instruction, not a return address, so it is symbolized at its own address (no offset-1).
    """

    reliable: bool = True
    section: str = "task"  # task, irq, softirq, nmi, exception, user, unknown
    inline: bool = False
    interrupted: bool = False


@dataclass(frozen=True)
class CodeBytes:
    """The `Code:` line: bytes around the trapping instruction.

    `trap_offset` is the index in `data` of the marked byte (x86 `<xx>`) or of the first byte of
    the marked word (arm64 `(xxxxxxxx)`), None when the line had no mark. `complete` is False when
    the console cut the line or the kernel could not read the bytes.
    """

    data: bytes
    trap_offset: int | None
    arch: str
    complete: bool = True
    raw: str = ""
    note: str | None = None


@dataclass(frozen=True)
class Task:
    comm: str | None = None
    pid: int | None = None
    cpu: int | None = None


@dataclass(frozen=True)
class Kernel:
    release: str | None = None  # 3.10.0-1160.el7.x86_64
    build: str | None = None  # "#1 SMP ..."
    distro: str | None = None  # el7, debian, ubuntu, ...
    hardware: str | None = None


@dataclass(frozen=True)
class Taint:
    flags: str = ""  # the letters as printed, e.g. "OE" or "G W O"
    decoded: tuple[str, ...] = ()

    @property
    def tainted(self) -> bool:
        return any(c not in "G " for c in self.flags)


@dataclass(frozen=True)
class Event:
    """A log record related to the crash: a preceding WARN, a refcount underflow, a bad-state line."""

    kind: str
    text: str
    line: int | None = None


@dataclass(frozen=True)
class Crash:
    kind: str
    title: str
    source: SourceSpan
    guilty_frame: str | None = None
    fault_address: int | None = None
    access: str | None = None  # read, write, exec
    error_code: int | None = None
    ip: Location | None = None
    kernel: Kernel = field(default_factory=Kernel)
    arch: str | None = None  # x86_64, arm64, ppc64, ppc64le, s390x, i386, arm, riscv64, mips
    task: Task = field(default_factory=Task)
    context: str = "unknown"
    taint: Taint = field(default_factory=Taint)
    modules: tuple[str, ...] = ()
    registers: Mapping[str, int] = field(default_factory=dict)
    code: CodeBytes | None = None
    frames: tuple[Frame, ...] = ()
    panic: str | None = None
    related_events: tuple[Event, ...] = ()
    corrupted: bool = False
    corrupted_reason: str | None = None
    bucket: str = ""
    lines: tuple[str, ...] = ()  # the report's own lines, prefixes removed
    system: Mapping[str, str] = field(default_factory=dict)  # sys-like facts (CPUS, MEMORY, UPTIME, DUMPFILE...)

    def replace(self, **changes: Any) -> Crash:
        return dataclasses.replace(self, **changes)

    def reg(self, name: str) -> int | None:
        """A register by any common spelling (RAX/rax, x19/X19, pc/PC)."""
        for k in (name, name.upper(), name.lower()):
            if k in self.registers:
                return self.registers[k]
        return None


CONFIDENCE = ("certain", "high", "medium", "low")


@dataclass(frozen=True)
class Finding:
    """One claim an analyzer makes, with what it rests on.

    `code` is a stable identifier (documented in docs/findings.md) so that tools and the
    knowledge base can key on it; `summary` is one sentence for a person; `evidence` lists
    the registers, bytes, instructions or memory reads behind it, as strings a person can check.
    """

    code: str
    summary: str
    evidence: tuple[str, ...] = ()
    confidence: str = "medium"
    analyzer: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    listing: tuple[str, ...] = ()  # optional multi-line display (disassembly)


@dataclass(frozen=True)
class Skipped:
    """An analyzer that could not run, and why (no debug info, no vmcore, no Code: line...)."""

    analyzer: str
    reason: str


@dataclass
class InputRecord:
    path: str
    format: str = "unknown"
    status: str = "ok"  # ok, error, partial
    error: str | None = None
    crashes: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class CrashReport:
    """A crash with everything ktriage concluded about it."""

    crash: Crash
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    known_bugs: list[Any] = field(default_factory=list)  # ktriage.kb.Match


@dataclass
class Report:
    """The one model every renderer reads."""

    inputs: list[InputRecord] = field(default_factory=list)
    crashes: list[CrashReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # report-wide remarks (rules not loaded, tiers used)

    SCHEMA = "ktriage.report/1"
