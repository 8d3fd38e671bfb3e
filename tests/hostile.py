"""Hostile and unlucky inputs, generated from a real console log (the lab's null-member oops, a
6.1 kernel's `BUG: kernel NULL pointer dereference` with `RIP:`, `Code:` and a call trace) by
changing one line: what a corrupted serial capture, a buggy out-of-tree module or an attacker
could produce. Kept as code, not files: some are megabytes."""

from __future__ import annotations

from pathlib import Path

from realdata import REPO

BASE = REPO / "tests" / "fixtures" / "lab" / "null-member.console.log"
TS = "[    2.025224] "


def base_lines() -> list[str]:
    return BASE.read_text().splitlines()


def replace_line(startswith: str, new: str) -> str:
    """The base log with the first line whose message starts with `startswith` replaced."""
    lines = base_lines()
    for i, line in enumerate(lines):
        if line[len(TS) :].startswith(startswith):
            lines[i] = TS + new
            return "\n".join(lines) + "\n"
    raise AssertionError(f"no line starts with {startswith!r} in {BASE}")


def insert_after(startswith: str, new: str) -> str:
    lines = base_lines()
    for i, line in enumerate(lines):
        if line[len(TS) :].startswith(startswith):
            lines.insert(i + 1, TS + new)
            return "\n".join(lines) + "\n"
    raise AssertionError(f"no line starts with {startswith!r} in {BASE}")


REAL_CODE = "cc cc cc cc cc 48 8b 87 f0 00 00 00 <48> 8b 80 30 0a 00 00 c3 90 c3 66 66 2e 0f 1f 84 00 00 00"


def code_line(n: int) -> str:
    """A `Code:` line of n bytes: a NOP sled, then the base log's real instructions with the faulting one
    marked (a real line has 64 bytes; every start offset in a sled decodes cleanly up to the mark)."""
    real = REAL_CODE.split()
    return "Code: " + " ".join(["90"] * (n - len(real)) + real)


# name -> log text. Each broke ktriage once: super-linear time in one line (issue 19).
CASES = {
    "panic-spaces": insert_after(
        "CR2: 0000000000000a30", "Kernel panic - not syncing: Fatal exception" + " " * 20000 + "x"
    ),
    "task-spaces": replace_line("CPU: 0 PID: 47 Comm: sh", "CPU: 0 PID: 47 Comm: sh" + " " * 20000 + "x"),
    "warning-symbol": insert_after(
        "crashmod: trigger", "WARNING: CPU: 0 PID: 47 at " + "a" * 20000 + " crashmod_write+0x6f/0xa0"
    ),
    "frame-symbol-offset": replace_line(" proc_reg_write+0x4a/0x90", " " + "s" * 100000 + "+0x4a/0x90"),
    "frame-symbol": replace_line(" proc_reg_write+0x4a/0x90", " " + "s" * 100000),
    "rip-symbol-offset": replace_line("RIP: 0010:", "RIP: 0010:" + "s" * 100000 + "+0x7/0x10 [crashmod]"),
    "rip-symbol": replace_line("RIP: 0010:", "RIP: 0010:" + "s" * 100000),
    "code-1000": replace_line("Code: cc cc", code_line(1000)),
    "code-10000": replace_line("Code: cc cc", code_line(10000)),
}


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p
