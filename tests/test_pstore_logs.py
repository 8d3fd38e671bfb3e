"""pstore parts and logs that begin inside a report.

pstore_dump() (fs/pstore/platform.c) writes the kernel log backwards in record-sized parts under a
`<reason>#<count> Part<n>` header: Part1 holds the NEWEST lines. The arm64 soft lockup below is the lab's real
console log (tests/fixtures/lab-arm64/soft-lockup.console.log, a 6.1.192 QEMU virt guest) cut the way a
pstore backend cuts it: Part2 ends with the registers, Part1 begins at `Call trace:`. A part alone, both
parts in name order (`cat dmesg-ramoops-*`: Part1 first) and both in time order must each give what the
text holds.
"""

from __future__ import annotations

import io
from pathlib import Path

from ktriage.logs import parse_log_text, scan_binary
from ktriage.logs.pstore import Part, part_of, reorder

FIXTURE = Path(__file__).parent / "fixtures" / "lab-arm64" / "soft-lockup.console.log"
LINES = FIXTURE.read_text().splitlines()
CUT = next(i for i, line in enumerate(LINES) if line.endswith("] Call trace:"))  # first Call trace: (line 110)
PART2 = "Panic#1 Part2\n" + "\n".join(LINES[:CUT]) + "\n"  # the head: boot, soft lockup header, registers
PART1 = "Panic#1 Part1\n" + "\n".join(LINES[CUT:]) + "\n"  # the tail: the call traces and the panic


def _soft_lockup(crashes):  # type: ignore[no-untyped-def]
    return [c for c in crashes if c.kind == "soft-lockup"]


def test_part_header_forms() -> None:
    assert part_of("Oops#1 Part1") == Part("Oops", 1, 1)
    assert part_of("<4>Panic#2 Part3") == Part("Panic", 2, 3)
    assert part_of("Panic#1 Part5 ") == Part("Panic", 1, 5)
    assert part_of("an Oops#1 Part1 in a sentence") is None
    assert part_of("Oops#1 Part1 of 3") is None
    assert Part("Oops", 1, 1).follows(Part("Oops", 1, 2)) and not Part("Oops", 1, 1).follows(Part("Oops", 2, 2))


def test_reorder_puts_highest_part_first_and_keeps_line_numbers() -> None:
    lines = list(enumerate(["boot", "Oops#1 Part1", "new", "Oops#1 Part2", "old", "Panic#2 Part1", "p"], 1))
    assert [t for _, t in reorder(lines)] == [
        "boot",
        "Oops#1 Part2",
        "old",
        "Oops#1 Part1",
        "new",
        "Panic#2 Part1",
        "p",
    ]
    assert [n for n, _ in reorder(lines)] == [1, 4, 5, 2, 3, 6, 7]
    plain = list(enumerate(["a", "b"], 1))
    assert reorder(plain) == plain


def test_parts_in_name_order_give_the_whole_soft_lockup() -> None:
    for text in (PART1 + PART2, PART2 + PART1):
        found = _soft_lockup(parse_log_text(text))
        assert len(found) == 1, [c.title for c in parse_log_text(text)]
        c = found[0]
        assert c.guilty_frame == "crashmod_spin" and c.arch == "arm64"
        assert (c.task.comm, c.task.pid, c.kernel.release) == ("lab-trigger", 33, "6.1.192")
        assert not c.corrupted and c.panic == "softlockup: hung tasks"
        assert any(f.symbol == "proc_reg_write" for f in c.frames)


def test_tail_part_alone_is_a_cut_report_with_its_frames() -> None:
    crashes = parse_log_text(PART1)
    c = crashes[0]
    # the header is in Part2; the watchdog's panic line in this part still names the kind
    assert c.kind == "soft-lockup" and c.corrupted and c.panic == "softlockup: hung tasks"
    assert c.corrupted_reason is not None and "Panic#1 Part2" in c.corrupted_reason
    assert c.guilty_frame == "crashmod_spin"
    assert [f.symbol for f in c.frames][:3] == ["crashmod_spin", "crashmod_write", "proc_reg_write"]
    assert any(e.kind == "note" and "Part2" in e.text for e in c.related_events)


def test_log_beginning_inside_call_trace_without_pstore_header() -> None:
    # the same tail as a saved console log that simply starts there (a ring buffer that wrapped)
    c = parse_log_text("\n".join(LINES[CUT:]) + "\n")[0]
    assert c.kind == "soft-lockup" and c.corrupted and "begins inside the report" in (c.corrupted_reason or "")
    assert c.guilty_frame == "crashmod_spin"
    assert (c.task.comm, c.task.pid) == ("lab-trigger", 33)  # from the panic's own `CPU: 1 PID: 33 Comm:` line
    # without the panic trailer nothing names the kind: unknown, still with the frames
    c = parse_log_text("\n".join(LINES[CUT : CUT + 11]) + "\n")[0]
    assert c.kind == "unknown" and c.corrupted and c.guilty_frame == "crashmod_spin" and len(c.frames) == 10


def test_head_part_alone_says_where_the_end_is() -> None:
    c = _soft_lockup(parse_log_text(PART2))[0]
    assert c.guilty_frame == "crashmod_spin" and c.task.comm == "lab-trigger"
    assert any(e.kind == "note" and "Panic#1 Part1" in e.text for e in c.related_events)


def test_streaming_reader_agrees() -> None:
    for text in (PART1 + PART2, PART1, "\n".join(LINES[CUT:]) + "\n"):
        got = [(c.kind, c.guilty_frame, c.corrupted) for c in scan_binary(io.BytesIO(text.encode()), "-")]
        assert got == [(c.kind, c.guilty_frame, c.corrupted) for c in parse_log_text(text)]


def test_a_dump_stack_after_its_own_message_is_not_a_cut_report() -> None:
    # a warning-level message printing a stack (its `CPU: ... Comm:` line shows the head is there)
    text = (
        "[ 50.70] sysfs: cannot create duplicate filename '/devices/virtual/x'\n"
        "[ 50.71] CPU: 1 PID: 48 Comm: kworker/u5:0 Not tainted 6.0.0 #0\n"
        "[ 50.73] Call Trace:\n[ 50.74]  dump_stack_lvl+0xcd/0x134\n[ 50.75]  sysfs_warn_dup+0x8a/0xa0\n"
    )
    assert parse_log_text(text) == []
