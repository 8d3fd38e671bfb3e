"""The log reader's block pre-filter, by property (issue 19): real oopses (the lab's console logs, tests/fixtures/)
spliced into ordinary lines at random offsets around the ends of the blocks the reader reads, with lines that
change the reader's state between them (boot banners, pstore part headers, panic trailers, control bytes, other
programs' syslog lines). Read with and without the pre-filter, the crashes are the same."""

from __future__ import annotations

import io
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ktriage.logs import scanner
from ktriage.logs.anchors import compile_other_run
from ktriage.logs.records import OTHER_SYSLOG_RUN
from ktriage.logs.scanner import parse_log_text, scan_binary
from ktriage.model import Crash
from realdata import REPO

LAB = sorted((REPO / "tests/fixtures/lab").glob("*.console.log"))


def _reports(path: Path) -> tuple[list[str], list[str]]:
    """(the log's ordinary lines before its first report, that report and the few lines after it)."""
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    first = parse_log_text(text, path.name)[0].source
    return lines[: first.first_line - 1], lines[first.first_line - 1 : first.last_line + 5]


_PAIRS = [_reports(p) for p in LAB]
ORDINARY = sorted({t for before, _ in _PAIRS for t in before[-200:]})
OOPSES = [report for _, report in _PAIRS if report]
STATE = [
    "[    0.000000] Linux version 6.1.0-9-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC",
    "Oops#1 Part1",
    "[  300.000000] Kernel panic - not syncing: Fatal exception",
    "[  300.000000] ---[ end trace 0000000000000000 ]---",
    "Dec  5 10:00:00 host systemd[1]: Started session 4 of user u4.",
    "Dec  5 10:00:00 host kernel: usb 1-1: new high-speed USB device number 2 using xhci_hcd",
    "\x1b[1m[   12.000000] BUG: soft lockup - CPU#0 stuck for 22s! [x:1]",
    # what a report without them reads from the lines before it: release (a module's version magic), arch
    "[    5.000000] mymod: version magic '5.10.0 SMP mod_unload' should be '6.1.0-9-amd64 SMP preempt mod_unload'",
    "[    5.000000] DMI: QEMU Standard PC, BIOS 1.16.2 x86_64",
    "[    5.000000] pstate: 60400005 (nZCv daif +PAN -UAO -TCO -DIT -SSBS BTYPE=--)",
    "",
]
ordinary_line = st.one_of(
    st.sampled_from(ORDINARY),
    st.sampled_from(STATE),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=60),
)


def _read(data: bytes, prefilter: bool, chunk: int) -> list[Crash]:
    old = scanner.CHUNK
    scanner.CHUNK = chunk
    try:
        return list(scan_binary(io.BytesIO(data), "fuzz.log", prefilter=prefilter))
    finally:
        scanner.CHUNK = old


@given(
    st.lists(ordinary_line, min_size=1, max_size=400),
    st.lists(st.tuples(st.integers(0, len(OOPSES) - 1), st.integers(0, 6), st.integers(-300, 300)), max_size=4),
    st.integers(512, 8192),
)
def test_prefilter_reads_what_every_line_reads(
    filler: list[str], splices: list[tuple[int, int, int]], chunk: int
) -> None:
    lines = list(filler)
    for which, block, delta in splices:
        # the line that starts nearest to `delta` bytes from the end of block `block`
        target, offset, at = (block + 1) * chunk + delta, 0, len(lines)
        for i, line in enumerate(lines):
            if offset >= target:
                at = i
                break
            offset += len(line.encode("utf-8", "surrogatepass")) + 1
        lines[at:at] = OOPSES[which]
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    full = _read(data, False, chunk)
    fast = _read(data, True, chunk)
    assert [(c.title, c.source.first_line, c.source.last_line) for c in fast] == [
        (c.title, c.source.first_line, c.source.last_line) for c in full
    ]
    assert fast == full
    if splices:
        assert full, "a spliced oops is found"


_ONE_OTHER_LINE = re.compile(OTHER_SYSLOG_RUN.pattern.replace(b"{1,1024}", b""))
_RE2_RUN = compile_other_run()
_word = st.one_of(
    st.sampled_from(["Z", "UTC", "UT", "UTCx", "kernel", "kerne", "kernelx", "k", "host", "systemd"]),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), min_size=0, max_size=45),
)


@given(
    st.sampled_from(["Dec  5 10:00:00 ", "Jan 15 23:59:59 ", "dec  5 10:00:00 ", "Dec 5 10:00:00 "]),
    _word,
    _word,
    st.sampled_from(["", "[1]", "[12345678901]", "["]),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=200),
)
def test_re2_run_accepts_the_lines_the_re_run_accepts(date: str, host: str, prog: str, pid: str, msg: str) -> None:
    line = f"{date}{host} {prog}{pid}: {msg}".replace("\n", " ").encode() + b"\n"
    assert bool(_RE2_RUN.fullmatch(line)) == bool(_ONE_OTHER_LINE.fullmatch(line))
