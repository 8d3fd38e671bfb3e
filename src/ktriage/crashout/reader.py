"""From a document holding `crash` utility output (often inside prose) to its blocks.

A document is cut into *pieces* (line number, text): blog line-number gutters are removed,
markdown fences end blocks, and lines that a blog engine flattened (a whole `crash> bt` on one
line) are split again before prompts, `#N [sp]` frames, `[exception RIP:` headers, register
blocks and stack switch lines. The pieces are then grouped into the blocks ktriage reads:
the `sys` header, `bt` task blocks, `log` sections and `dis` listings. Everything else (prose,
other commands' output) is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()][A-Za-z0-9]|[=>78c])")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(line: str) -> str:
    """Terminal noise off: ANSI escapes, CR, control bytes (tabs kept)."""
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    line = _CTRL.sub("", line.replace("\r", ""))
    return line.translate(_SPACES) if not line.isascii() else line


# blog engines turn the alignment spaces of crash output into NBSP and friends
_SPACES = {c: " " for c in (0xA0, 0x2002, 0x2003, 0x2009, 0x202F, 0x3000, 0xFEFF)}

Piece = tuple[int, str]  # (1-based input line, text)

PROMPT = re.compile(r"^\s*crash[\w.\-]*> ?(.*)$")
_INNER_PROMPT = re.compile(r"(?<=\S)\s+(?=crash[\w.\-]*> )")
_GUTTER = re.compile(r"^\s*((?:\d+\s+){2,})(?=\S)")
_GUTTER1 = re.compile(r"^\s*1\s+(?=crash[\w.\-]*> |0x[0-9a-f]+ <[^>\s]+>:|#0 \[|PID: \d)")
_FENCE = re.compile(r"^\s*(?:```|~~~)")

SYS_FIELDS = (
    "KERNEL",
    "DUMPFILE",
    "CPUS",
    "DATE",
    "UPTIME",
    "LOAD AVERAGE",
    "TASKS",
    "NODENAME",
    "RELEASE",
    "VERSION",
    "MACHINE",
    "MEMORY",
    "PANIC",
    "PID",
    "COMMAND",
    "TASK",
    "CPU",
    "STATE",
    "SYSTEM MAP",
    "DEBUG KERNEL",
    "KERNEL DEBUGINFO",
    "DUMPFILES",
    "INTERRUPTED",
    "GNU_GET_VERSION",
)
_SYS_LINE = re.compile(r"^\s*(" + "|".join(SYS_FIELDS) + r"): ?(.*?)\s*$")
_SYS_START = re.compile(r"^\s*(?:KERNEL|DUMPFILE|SYSTEM MAP|DEBUG KERNEL): \S")
_SYS_SPLIT = re.compile(r"(?<=\S)\s+(?=(?:" + "|".join(f for f in SYS_FIELDS if f != "KERNEL") + r"): )")

BT_HEADER = re.compile(r"^\s*PID: (\d+)\s+TASK: ([0-9a-f]+)\s+CPU: (\d+)\s+COMMAND: \"(.*)\"\s*$")
FRAME = re.compile(
    r"^\s*#(\d+)\s+\[([0-9a-f]+)\]\s+(\S+?)(?:\+(\d+))?\s+at\s+([0-9a-f]+)"
    r"(?:\s+\[([\w\-.]+)\])?\s*$"
)
EXC_RIP = re.compile(r"^\s*\[exception RIP: (?:([A-Za-z_.$][\w.$]*)(?:\+(\d+))?(?:\s+\[([\w\-.]+)\])?|(.*?))\]\s*$")
# arm64: "     PC: ffffff80080f8e64  [sysrq_handle_crash+28]"
EXC_PC = re.compile(r"^\s*PC: ([0-9a-f]{8,16})\s+\[([A-Za-z_.$][\w.$]*)(?:\+(\d+))?\]\s*$")
REG_LINE = re.compile(r"^\s*(?:(?:[A-Z][A-Z0-9_]{0,8}|X\d{1,2}|[xX]\d{1,2}):\s+[0-9a-f]{2,16}\s*)+$")
REG = re.compile(r"\b([A-Z][A-Z0-9_]{0,8}|[xX]\d{1,2}):\s+([0-9a-f]{2,16})\b")
SWITCH = re.compile(r"^\s*--- <(.+?)> ---\s*$")
# lines that may sit inside a bt without ending it: `bt -l` sources, `bt -f` stack words, crash warnings
_BT_NOISE = re.compile(
    r"^\s*(?:/\S+: \d+\s*$|[0-9a-f]{8,16}: (?:[0-9a-f]{8,16}\s*)+$|bt: |WARNING: |"
    r"\[[0-9a-f]{8,16}\]\s+\S+ at [0-9a-f]+)"
)
_BT_SPLIT = re.compile(
    r"(?<=\S)\s+(?=PID: \d+\s+TASK: [0-9a-f]+|#\d+ \[[0-9a-f]{6,16}\] |\[exception RIP: |"
    r"RIP: [0-9a-f]{8,16}\s+RSP: |--- <[^>]+> ---|PC: [0-9a-f]{8,16}\s+\[)"
)

DIS_LINE = re.compile(r"^\s*0x[0-9a-f]+ <[^>]+>:\s")
_DIS_SRC = re.compile(r"^\s*/\S+: \d+\s*$")
_DIS_SPLIT = re.compile(r"(?<=\S)\s+(?=0x[0-9a-f]{8,16} <[^>\s]+>:|/\S+\.[chS]: \d+)")
_LOG_CMDS = re.compile(r"^(?:log|dmesg)\b")


@dataclass
class SysHeader:
    fields: dict[str, str]
    first: int
    last: int
    lines: list[str]


@dataclass
class ExcBlock:
    symbol: str | None
    offset: int | None
    module: str | None
    registers: dict[str, int]
    line: int
    text: str


@dataclass
class BtTask:
    pid: int
    task: int
    cpu: int
    comm: str
    first: int
    last: int
    lines: list[str] = field(default_factory=list)
    # ("frame", (num, sp, symbol, offset, addr, module)), ("exc", ExcBlock), ("switch", name)
    items: list[tuple[str, Any]] = field(default_factory=list)  # the tag says what the item is

    @property
    def frame_count(self) -> int:
        return sum(1 for k, _ in self.items if k == "frame")


@dataclass
class Session:
    sys: SysHeader | None = None
    bts: list[BtTask] = field(default_factory=list)
    logs: list[list[Piece]] = field(default_factory=list)
    dis: list[list[Piece]] = field(default_factory=list)


def _strip_gutter(text: str) -> str:
    """Drop a blog engine's code-block line numbers: `1 2 3 ... 41 crash> bt ...`."""
    m = _GUTTER.match(text)
    if not m:
        one = _GUTTER1.match(text)
        return text[one.end() :] if one else text
    nums = m.group(1).split()
    if nums == [str(i) for i in range(1, len(nums) + 1)]:
        return text[m.end() :]
    return text


def pieces(text: str) -> list[Piece]:
    """Physical lines, cleaned, gutters removed, split again before inner `crash>` prompts."""
    out: list[Piece] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, raw in enumerate(lines, 1):
        line = _strip_gutter(clean(raw))
        if "crash" in line and "> " in line:
            for part in _INNER_PROMPT.split(line):
                out.append((n, part))
        else:
            out.append((n, line))
    return out


def _split_bt(text: str) -> list[str]:
    if "#" in text or "RIP" in text or "PID:" in text or "--- <" in text or "PC:" in text:
        return _BT_SPLIT.split(text)
    return [text]


def _regs(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2), 16) for m in REG.finditer(text)}


class _BtBuilder:
    def __init__(self, m: re.Match[str], n: int, text: str) -> None:
        self.bt = BtTask(int(m.group(1)), int(m.group(2), 16), int(m.group(3)), m.group(4), n, n, [text.strip()])
        self.exc: ExcBlock | None = None  # the exception block still reading registers
        self.after_frame = False  # register lines after a frame (user-mode regs): not an exception's

    def feed(self, n: int, text: str) -> bool:
        """Take one piece; False when it does not belong to a bt."""
        s = text.strip()
        if not s:
            return True
        m = FRAME.match(s)
        if m:
            self.exc = None
            off = int(m.group(4)) if m.group(4) else None
            self.bt.items.append(
                ("frame", (int(m.group(1)), int(m.group(2), 16), m.group(3), off, int(m.group(5), 16), m.group(6)))
            )
            return self._keep(n, s)
        m = EXC_RIP.match(s)
        if m:
            sym = m.group(1)
            self.exc = ExcBlock(sym, int(m.group(2)) if m.group(2) and sym else None, m.group(3), {}, n, s)
            self.bt.items.append(("exc", self.exc))
            return self._keep(n, s)
        m = EXC_PC.match(s)
        if m:
            self.exc = ExcBlock(
                m.group(2), int(m.group(3)) if m.group(3) else None, None, {"PC": int(m.group(1), 16)}, n, s
            )
            self.bt.items.append(("exc", self.exc))
            return self._keep(n, s)
        if REG_LINE.match(s) or (self.exc is not None and s.startswith(("LR:", "SP:"))):
            if self.exc is not None:
                for k, v in _regs(s).items():
                    self.exc.registers.setdefault(k, v)
                self.exc.text += "\n" + s
            return self._keep(n, s)
        m = SWITCH.match(s)
        if m:
            self.exc = None
            self.bt.items.append(("switch", m.group(1)))
            return self._keep(n, s)
        if _BT_NOISE.match(s):
            return self._keep(n, s)
        return False

    def _keep(self, n: int, s: str) -> bool:
        self.bt.lines.append(s)
        self.bt.last = n
        return True


class _Reader:
    """The state machine over pieces; see `sessions`."""

    def __init__(self) -> None:
        self.out: list[Session] = [Session()]
        self.bt: _BtBuilder | None = None
        self.sysh: SysHeader | None = None
        self.log: list[Piece] | None = None
        self.dis: list[Piece] | None = None

    @property
    def cur(self) -> Session:
        return self.out[-1]

    def close(self) -> None:
        if self.bt is not None:
            self.cur.bts.append(self.bt.bt)
            self.bt = None
        if self.dis is not None:
            if self.dis:
                self.cur.dis.append(self.dis)
            self.dis = None
        if self.log is not None:
            self.cur.logs.append(self.log)
            self.log = None
        self.close_sys()

    def close_sys(self) -> None:
        if self.sysh is not None:
            if self.cur.sys is not None:
                self.out.append(Session())
            self.cur.sys = self.sysh
            self.sysh = None

    def prompt(self, n: int, raw: str, cmd: str) -> None:
        """A `crash>` prompt: start reading that command's output."""
        if _LOG_CMDS.match(cmd):
            self.log = []
            return
        if cmd.startswith("dis"):
            parts = _DIS_SPLIT.split(cmd)
            self.dis = [(n, "crash> " + parts[0])] + [(n, p) for p in parts[1:]]
            return
        rest: list[str] = []
        if cmd.startswith("bt"):  # a flattened `crash> bt PID: ...` holds the output after the command
            parts = _split_bt(cmd)
            rest = parts[1:]
        elif cmd.startswith("sys"):
            parts = _SYS_SPLIT.split(cmd)
            w = re.match(r"^sys\b(?:\s+-\w+)*\s*", parts[0])
            head = parts[0][w.end() :] if w else ""
            rest = ([head] if head else []) + parts[1:]
        for p in rest:
            self.part(n, p)

    def line(self, n: int, raw: str) -> None:
        if self.log is not None:
            self.log.append((n, raw))
            return
        if self.dis is None and (DIS_LINE.match(raw) or (self.bt is None and _DIS_SRC.match(raw))):
            if (
                self.bt is not None
            ):  # a listing pasted without its prompt (as a CentOS 8 post-mortem pasted it) after a bt
                self.cur.bts.append(self.bt.bt)
                self.bt = None
            self.close_sys()
            self.dis = []
        if self.dis is not None:
            parts = _DIS_SPLIT.split(raw) if raw.strip() else []
            k = 0
            while k < len(parts) and (DIS_LINE.match(parts[k]) or _DIS_SRC.match(parts[k])):
                k += 1
            self.dis += [(n, p.strip()) for p in parts[:k]]
            if parts and k == len(parts):
                return
            if self.dis:
                self.cur.dis.append(self.dis)
            self.dis = None
            raw = " ".join(parts[k:])
        for p in _split_bt(raw):
            self.part(n, p)

    def part(self, n: int, part: str) -> None:
        """One piece outside log/dis sections: a sys field, a bt line, a listing line, or prose."""
        s = part.strip()
        if self.bt is not None:
            if not BT_HEADER.match(s) and self.bt.feed(n, part):
                return
            self.cur.bts.append(self.bt.bt)
            self.bt = None
        if self.sysh is not None:
            m = _SYS_LINE.match(part)
            if m and m.group(1) not in self.sysh.fields and not BT_HEADER.match(s):
                self.sysh.fields.setdefault(m.group(1), m.group(2))
                self.sysh.last = n
                self.sysh.lines.append(s)
                return
            self.close_sys()
        m = BT_HEADER.match(s)
        if m:
            self.bt = _BtBuilder(m, n, part)
            return
        if _SYS_START.match(part):
            self.sysh = SysHeader({}, n, n, [])
            for p in _SYS_SPLIT.split(part):
                m2 = _SYS_LINE.match(p)
                if m2:
                    self.sysh.fields.setdefault(m2.group(1), m2.group(2))
                    self.sysh.lines.append(p.strip())
            return


def sessions(text: str) -> list[Session]:
    """Group the crash-output parts of a document; a second `sys` header starts a new session."""
    r = _Reader()
    for n, raw in pieces(text):
        pm = PROMPT.match(raw)
        if pm or _FENCE.match(raw):
            r.close()
            if pm:
                r.prompt(n, raw, pm.group(1).strip())
            continue
        r.line(n, raw)
    r.close()
    return [s for s in r.out if s.sys or s.bts or s.logs]
