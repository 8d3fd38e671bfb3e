"""The fast path for plain dmesg lines in `records` reads exactly what the full prefix rules read.

`strip_prefixes` skips its collector/quote/syslog/`dmesg -T` rules when a line starts with a dmesg timestamp and
holds no clock time. Forcing every line through the full rules (the clock test patched to always find one) must
give the same Records on real logs: the lab's console logs (x86_64 and arm64), real bug-tracker and mail texts
(tests/corpora/real) and syzkaller reports (tests/fixtures/syzkaller).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ktriage.logs import records as rec_mod
from ktriage.logs.formats import END_MARKERS
from ktriage.logs.records import Record, records, strip_prefixes
from ktriage.logs.scanner import _may_end

ROOT = Path(__file__).parent
REAL_LOGS = sorted(
    p
    for d in (
        ROOT / "fixtures" / "lab",
        ROOT / "fixtures" / "lab-arm64",
        ROOT / "fixtures" / "syzkaller",
        ROOT / "corpora" / "real",
    )
    for p in d.rglob("*")
    if p.is_file() and p.suffix != ".md"
)


def _read(path: Path) -> list[Record]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return list(records(enumerate(text.splitlines(), 1)))


def test_real_logs_are_there() -> None:
    assert len(REAL_LOGS) > 100


@pytest.mark.parametrize("path", REAL_LOGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_fast_path_reads_what_the_full_rules_read(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _read(path)
    monkeypatch.setattr(rec_mod, "_CLOCK", re.compile(""))  # every line "holds a clock": the full rules
    assert _read(path) == fast


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # CONFIG_PRINTK_CALLER's id right after the timestamp, then journalctl's "kernel: "
        ("[   12.345678][  T123] kernel: BUG: x", ("BUG: x", 12.345678, "T123", "kernel", None)),
        # journalctl -o short-monotonic: "[ts] host kernel: msg"
        ("[    5.000000] myhost kernel: Oops: 0002", ("Oops: 0002", 5.0, None, "kernel", None)),
        # a printk level and rsyslog's escaped newline after the timestamp
        ("[    1.000000] <4>WARNING: foo", ("WARNING: foo", 1.0, None, "kernel", None)),
        ("[    1.000000] #012but task is", ("but task is", 1.0, None, "kernel", None)),
        # a clock in the message: the full rules run, and read the same message
        (
            "[    5.000000] rtc_cmos 00:00: setting system clock to 2026-12-06T01:02:03 UTC",
            ("rtc_cmos 00:00: setting system clock to 2026-12-06T01:02:03 UTC", 5.0, None, "kernel", None),
        ),
        # a timestamp, then a syslog header (the clock gate sends it to the full rules: another program's line)
        (
            "[12.345678] Dec 5 10:00:00 host sshd[42]: Accepted key",
            ("Accepted key", None, None, "other", "[12.345678] Dec 5 10:00:00"),
        ),
        # a syslog header before the timestamp is still read as one
        (
            "Dec  5 10:00:00 host kernel: [    7.500000] BUG: y",
            ("BUG: y", 7.5, None, "kernel", "Dec  5 10:00:00"),
        ),
    ],
)
def test_strip_prefixes(line: str, expected: tuple[str, float | None, str | None, str, str | None]) -> None:
    assert strip_prefixes(line) == expected


def test_glued_records_are_still_split() -> None:
    got = list(records([(1, "[    1.000000] first [    1.000001] second")]))
    assert [(r.text, r.ts) for r in got] == [("first", 1.0), ("second", 1.000001)]


def test_end_marker_gate_lets_every_marker_through() -> None:
    """The scanner searches END_MARKERS only on lines `_may_end` lets through: none of the real ends is lost."""
    texts = [r.text for p in REAL_LOGS for r in _read(p)]
    ends = [t for t in texts if END_MARKERS.search(t)]
    assert len(ends) > 20
    assert all(_may_end(t) for t in ends)
    for t in ("---[ end trace 0000000000000000 ]---", "Kernel Offset: 0x1000000 from 0xffffffff81000000", "=" * 66):
        assert END_MARKERS.search(t) and _may_end(t)
    assert not _may_end("? foo+0x10/0x20") and not _may_end("Call Trace:")
