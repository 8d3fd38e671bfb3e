"""The scanner skips other programs' syslog lines without parsing them (issue 19: a big syslog is mostly
made of them); skipping one must never change what is found."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ktriage.logs.records import OTHER_SYSLOG_RUN, other_program_line, records
from ktriage.logs.scanner import parse_log_text, scan_binary

FIXTURES = Path(__file__).parent / "fixtures"
# the lab's null-member oops (a real x86-64 console log), as a syslog daemon writes it
CONSOLE = FIXTURES / "lab" / "null-member.console.log"

# each line with the answer read by hand: is it one syslog line of another program than the kernel?
LINES = [
    ("Dec  5 10:00:00 host systemd[1]: Started session 4 of user u4 (pid 1004).", True),
    ("Nov 22 04:21:52 web01 sshd[2231]: Accepted publickey for root from 10.0.0.1", True),
    ("Nov 22 04:21:52 web01 CRON[77]: (root) CMD (run-parts /etc/cron.hourly)", True),
    ("Dec  5 10:00:00 host kernel: BUG: kernel NULL pointer dereference, address: 0000000000000030", False),
    ("Dec  5 10:00:00 host kernel[0]: Call Trace:", False),
    # busybox syslog without a host name: the program is the kernel
    ("May 18 14:56:06 kernel: systemd[1]: Call Trace:", False),
    # a time zone where the host would be: syslog reads the next word as the host
    ("Dec  5 10:00:00 UTC systemd[1]: msg", False),
    # a dmesg line glued to another program's line (newline lost): the kernel record inside is read
    ("Dec  5 10:00:00 host foo: text [   12.345678] BUG: unable to handle page fault", False),
    # an escape or CR inside: cleaned first, left to the full reader
    ("Dec  5 10:00:00 host foo: \x1b[1mbold\x1b[0m", False),
    ("Dec  5 10:00:00 host foo: a\rDec  5 10:00:00 host kernel: Oops: 0002", False),
    ("[   12.345678] BUG: kernel NULL pointer dereference", False),
    ("some prose line", False),
]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_other_program_lines_read_by_hand(line: str, expected: bool) -> None:
    assert other_program_line(line) is expected


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_a_skipped_line_is_one_record_of_another_program(line: str, expected: bool) -> None:
    if other_program_line(line):
        recs = list(records([(1, line)]))
        assert [r.origin for r in recs] == ["other"]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_the_byte_run_skips_only_what_the_line_test_skips(line: str, expected: bool) -> None:
    if OTHER_SYSLOG_RUN.fullmatch((line + "\n").encode()):
        assert other_program_line(line)


def _syslog(lines: list[str]) -> list[str]:
    return ["Dec  5 10:00:00 host kernel: " + line[15:] for line in lines]


def _other(i: int) -> str:
    # every third one with a `[` in its text: read line by line, not in a run
    extra = " [unit]" if i % 3 == 0 else ""
    return f"Dec  5 10:00:{i % 60:02d} host systemd[1]: Started session {i} of user u{i % 7}.{extra}"


@pytest.mark.parametrize("gap", [0, 1, 3])
def test_the_fast_path_finds_what_the_full_reader_finds(gap: int) -> None:
    """Other programs' lines before, inside and after the oops (the report stays open while they go by),
    and a log that begins with them (its first kernel lines could be a report's tail)."""
    oops = _syslog(CONSOLE.read_text().splitlines())
    mixed = [_other(i) for i in range(500)]
    for i, line in enumerate(oops):
        mixed.append(line)
        mixed.extend(_other(i * 10 + k) for k in range(gap))
    mixed.extend(_other(i) for i in range(3000))
    text = "\n".join(mixed) + "\n"
    full = parse_log_text(text, "x")
    fast = list(scan_binary(io.BytesIO(text.encode()), "x"))
    assert full, "the oops is found"
    assert [c.title for c in fast] == [c.title for c in full]
    assert fast == full


def test_boot_banners_found_by_block_as_line_by_line() -> None:
    """The boot-banner search reads a big log in blocks; line numbers stay right across block ends."""
    from ktriage.debuginfo.find import _find_banners

    assert _find_banners(io.BytesIO(b"a\nLinux version 2\n")) == [(2, "Linux version 2")]
    assert _find_banners(io.BytesIO(b"a\n\nx Linux version 3 Linux version 4\r\nb\nLinux version 5")) == [
        (3, "Linux version 3 Linux version 4"),
        (5, "Linux version 5"),
    ]
    filler = b"Dec  5 10:00:00 host systemd[1]: Started session.\n"
    banner = b"Dec  5 10:00:00 host kernel: Linux version 6.1.0 (gcc) #1 SMP\n"
    text = "Linux version 6.1.0 (gcc) #1 SMP"
    n = (9 << 20) // len(filler)  # past two 4 MiB blocks
    data = filler * (n // 2) + banner + filler * (n - n // 2) + banner
    assert _find_banners(io.BytesIO(data)) == [
        (n // 2 + 1, text),
        (n + 2, text),
    ]
