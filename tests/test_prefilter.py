"""The log reader's block pre-filter (issue 19: a big syslog at the speed of grep) must never change what is
found: every header pattern has literal anchors derived from it, and every text we have, read with and without
the pre-filter (and in blocks small enough that reports and skipped runs straddle block ends), gives the same
crashes: titles, kinds, line spans, frames and every other field."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ktriage.logs import anchors, scanner
from ktriage.logs.formats import FORMATS
from ktriage.logs.records import OTHER_SYSLOG_RUN, records
from ktriage.logs.scanner import scan_binary
from ktriage.model import Crash
from realdata import CORPUS, REPO, SEEDS

LAB = REPO / "tests" / "fixtures" / "lab"


def _scan(data: bytes, prefilter: bool, chunk: int | None = None) -> list[Crash]:
    old = scanner.CHUNK
    if chunk:
        scanner.CHUNK = chunk
    try:
        return list(scan_binary(io.BytesIO(data), "x.log", prefilter=prefilter))
    finally:
        scanner.CHUNK = old


def assert_same(data: bytes, chunk: int | None = None, what: str = "") -> list[Crash]:
    full = _scan(data, False, chunk)
    fast = _scan(data, True, chunk)
    spans = [(c.title, c.kind, c.source.first_line, c.source.last_line) for c in full]
    assert [(c.title, c.kind, c.source.first_line, c.source.last_line) for c in fast] == spans, what
    assert fast == full, what  # frames, registers, context read from before the report, notes...
    return full


# --- the anchors are derived from the patterns ------------------------------------------------------


def test_every_header_pattern_has_anchors() -> None:
    """A header pattern added to formats.FORMATS without a literal of 3+ characters that every match holds
    (say `\\w+:\\d+`) would be skipped by the pre-filter: it fails here first."""
    assert anchors.underived(anchors.header_patterns()) == []
    assert anchors.underived(anchors.STATE_PATTERNS) == []
    assert len(anchors.header_patterns()) == len(FORMATS)


def test_a_pattern_without_a_literal_is_reported() -> None:
    assert anchors.underived([r"\w+:\d+", r"(?i:oops)", r".*", r"[A-Z]{2}: ", r"\w+ failed"]) == [
        r"\w+:\d+",
        r"(?i:oops)",
        r".*",
        r"[A-Z]{2}: ",
    ]
    with pytest.raises(ValueError, match="no literal anchor"):
        _all_with(r"\w+:\d+")


def _all_with(extra: str) -> list[str]:
    old = anchors.STATE_PATTERNS
    anchors.STATE_PATTERNS = (*old, extra)
    try:
        return anchors.all_anchors()
    finally:
        anchors.STATE_PATTERNS = old


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # checked by reading each pattern: the literal run every match must contain, the longest one
        (r"BUG: KASAN: ([a-z\-]+) in ([a-zA-Z0-9_.$]+)", {"BUG: KASAN: "}),
        (r"(?:list_add|list_del|hlist_del)\w* corruption", {" corruption"}),
        (r"(?:INFO: )?rcu_(?:preempt|sched) detected", {"rcu_preempt detected", "rcu_sched detected"}),
        (r"Oops: [Kk]ernel access", {"Oops: Kernel access", "Oops: kernel access"}),
        (r"divide(?: |_)error: ", {"divide error: ", "divide_error: "}),
        (r"^BUG:\s*$", {"BUG:"}),
        (r"(?:^|^[\w\-.]+ [\w\-.:]+: )((?:WARNING|BUG|INFO): \S.*?)\s*$", {"WARNING: ", "BUG: ", "INFO: "}),
        (r"^Linux version \d", {"Linux version "}),
        (r"x(?:ab|cd)?y", None),  # `xy`, `xaby` or `xcdy`: no run of 3 characters in all of them
    ],
)
def test_derived_anchors_read_by_hand(pattern: str, expected: set[str] | None) -> None:
    got = anchors.derive(pattern)
    assert (set(got) if got is not None else None) == expected


def test_anchors_are_necessary_on_real_header_lines() -> None:
    """Every line of the texts below that a header pattern matches holds one of that pattern's anchors."""
    checked = 0
    derived = [(f.header, anchors.derive(f.header.pattern) or frozenset()) for f in FORMATS]
    for path in _texts():
        text = path.read_bytes().decode("utf-8", "replace")
        for rec in records(enumerate(text.split("\n"), 1)):
            for header, lits in derived:
                if header.search(rec.text):
                    checked += 1
                    assert any(a in rec.text for a in lits), (path.name, header.pattern, rec.text)
    assert checked > 500


def _engines() -> list[str]:
    """RE2 always; Hyperscan where the `fast` extra is installed (CI installs it, so both are tested there)."""
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return ["re2"]
    return ["re2", "hyperscan"]


@pytest.mark.parametrize("engine", _engines())
def test_the_prefilter_finds_every_anchor_and_hidden_byte(engine: str) -> None:
    rx = anchors.compile_prefilter(engine)
    assert rx.engine == engine
    for a in anchors.all_anchors():
        hit = rx.first_end(b"xx " + a.encode() + b" yy")
        assert hit == 3 + len(a.encode()), a
    for hidden in (b"BU\x00G: x", b"\x1b[1mBUG: x", b'{"log": "\\u0042UG: x"}', b"a\x7fb"):
        assert rx.first_end(hidden), hidden
    assert rx.first_end(b"Dec  5 10:00:00 host systemd[1]: Started session 4 of user u4.\r\n") is None
    # the window is respected: an anchor before `pos` or from `end` on is not seen
    line = b"BUG: a\nok\nOops: b\n"
    assert rx.first_end(line, 1) == line.index(b"Oops") + 4
    assert rx.first_end(line, 1, line.index(b"Oops") + 3) is None


def _anchor_lines(rx: anchors.AnchorSearch, data: bytes, block: int) -> list[int]:
    """The start of every line the pre-filter stops at, searching block by block as the scanner does."""
    out, pos = [], 0
    while pos < len(data):
        end = min(pos + block, len(data))
        hit = rx.first_end(data, pos, end)
        if hit is None:
            pos = end
            continue
        start = data.rfind(b"\n", 0, hit) + 1
        out.append(start)
        pos = data.find(b"\n", hit)
        pos = len(data) if pos < 0 else pos + 1
    return out


@pytest.mark.skipif(len(_engines()) < 2, reason="Hyperscan (the `fast` extra) is not installed")
def test_hyperscan_stops_at_the_lines_re2_stops_at() -> None:
    """Both engines, on every text of the repository (and the syzkaller corpus when present), at two block
    sizes: the same lines, in the same order."""
    re2_rx, hs_rx = anchors.compile_prefilter("re2"), anchors.compile_prefilter("hyperscan")
    paths = list(_texts()) + (sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else [])
    stops = 0
    for path in paths:
        data = path.read_bytes()
        for block in (4096, 1 << 22):
            want = _anchor_lines(re2_rx, data, block)
            assert _anchor_lines(hs_rx, data, block) == want, (path, block)
            stops += len(want)
    assert stops > 1000  # a real comparison: thousands of lines stopped at, not a few


# --- the same crashes with and without it ------------------------------------------------------------


def _texts() -> Iterator[Path]:
    for root in (REPO / "tests" / "fixtures", REPO / "tests" / "corpora"):
        yield from sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".yaml", ".json", ".gz"))


def _shared(root: Path) -> list[Path]:
    if not root.is_dir():
        pytest.skip(f"{root} not found (set KTRIAGE_SHARED to the shared material)")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("chunk", [None, 4096])
def test_same_crashes_on_every_text_in_the_repository(chunk: int | None) -> None:
    found = 0
    for path in _texts():
        found += len(assert_same(path.read_bytes(), chunk, str(path)))
    assert found > 150  # the texts hold crashes: the comparison is not between two empty lists


@pytest.mark.parametrize("chunk", [None, 4096])
def test_same_crashes_on_the_syzkaller_corpus(chunk: int | None) -> None:
    found = sum(len(assert_same(p.read_bytes(), chunk, str(p))) for p in _shared(CORPUS))
    assert found > 200


@pytest.mark.parametrize("chunk", [None, 4096])
def test_same_crashes_on_the_public_reports(chunk: int | None) -> None:
    paths = _shared(SEEDS)
    found = sum(len(assert_same(p.read_bytes(), chunk, str(p))) for p in paths)
    assert found >= len([p for p in paths if p.suffix == ".txt"]) // 2


# --- the reader's state across skipped runs, case by case ------------------------------------------------

OOPS = [line for line in (LAB / "null-member.console.log").read_text().splitlines()]
_HEAD = next(i for i, line in enumerate(OOPS) if "BUG: kernel NULL" in line)
CRASH = OOPS[_HEAD : _HEAD + 40]


def _other(n: int, start: int = 0) -> list[str]:
    return [f"Dec  5 10:00:{i % 60:02d} host systemd[1]: Started session {i}." for i in range(start, start + n)]


def _kernel(n: int, start: int = 0) -> list[str]:
    return [f"[{100 + i}.000000] usb 1-1: new device number {i}" for i in range(start, start + n)]


def _join(*parts: list[str]) -> bytes:
    return ("\n".join(line for part in parts for line in part) + "\n").encode()


# lines that tell a report which kernel and architecture it ran on when the report itself does not (read by hand:
# report.py takes the release from a module's version magic line, arch.py x86_64 from the word)
VERMAGIC = (
    "[    5.000000] mymod: version magic '5.10.0 SMP mod_unload' should be '6.1.0-9-amd64 SMP preempt mod_unload'"
)
ARCH = "[    5.000000] DMI: QEMU Standard PC, BIOS 1.16.2 x86_64"
PANIC = "[  300.000000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"

CASES = {
    # a lone panic line reads its release and arch from the 300 lines before it: 298 other lines after the two
    # telling lines keep them inside that window, 300 put them outside
    "context window, release just inside": _join(_kernel(200), [VERMAGIC, ARCH], _other(298), [PANIC]),
    "context window, release just outside": _join(_kernel(200), [VERMAGIC, ARCH], _other(300), [PANIC]),
    "boot banner inside a skipped run": _join(
        _kernel(400), ["[    0.000000] Linux version 6.1.0-9-amd64 (gcc-12) #1 SMP"], _kernel(100), CRASH
    ),
    "boot banner far before the report": _join(
        ["[    0.000000] Linux version 5.10.0-21-amd64 (gcc-10) #1 SMP"], _kernel(5000), CRASH
    ),
    "panic trailer 59 lines after": _join(
        _kernel(50),
        CRASH,
        ["[  200.000000] ---[ end trace 0 ]---"],
        _other(58),
        ["[  201.0] Kernel panic - not syncing: Fatal exception"],
    ),
    "panic trailer 62 lines after": _join(
        _kernel(50),
        CRASH,
        ["[  200.000000] ---[ end trace 0 ]---"],
        _other(61),
        ["[  201.0] Kernel panic - not syncing: Fatal exception"],
    ),
    "header behind a control byte": _join(_kernel(300), [line.replace("BUG:", "BU\x01G:") for line in CRASH]),
    "header behind an ANSI escape": _join(_kernel(300), [line.replace("BUG:", "\x1b[31mBUG:") for line in CRASH]),
    "header in JSON escapes": _join(
        _kernel(300), ['{"log": "' + line.replace("BUG", "\\u0042UG").replace('"', "'") + '"}' for line in CRASH]
    ),
    "pstore part header inside a skipped run": _join(_kernel(300), ["Oops#1 Part1"], CRASH[10:]),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("chunk", [None, 1024, 65536])
def test_reader_state_is_kept_across_skipped_runs(name: str, chunk: int | None) -> None:
    data = CASES[name]
    assert_same(data, chunk, name)


def test_the_cases_find_what_they_are_about() -> None:
    """The cases above are not vacuous: the oops is found in each, and the hidden headers are read."""
    for name, data in CASES.items():
        crashes = _scan(data, True)
        assert crashes, name
    (near,) = _scan(CASES["context window, release just inside"], True)
    (far,) = _scan(CASES["context window, release just outside"], True)
    assert (near.kernel.release, near.arch) == ("6.1.0-9-amd64", "x86_64")
    assert (far.kernel.release, far.arch) == (None, None)
    inside = _scan(CASES["panic trailer 59 lines after"], True)
    outside = _scan(CASES["panic trailer 62 lines after"], True)
    assert inside[0].panic == "Fatal exception" and len(inside) == 1
    assert outside[0].panic is None and outside[-1].kind != inside[0].kind


def test_a_skipped_run_keeps_line_numbers() -> None:
    data = _join(_other(100_000), CRASH)
    (c,) = _scan(data, True)
    assert c.source.first_line == 100_001
    assert re.search(r"NULL pointer", c.title)


# --- the RE2 spelling of the other-program run accepts the lines the `re` one does ---------------------------------

_ONE_OTHER_LINE = re.compile(OTHER_SYSLOG_RUN.pattern.replace(b"{1,1024}", b""))
_RE2_RUN = anchors.compile_other_run()
_H, _P = b"h" * 41, b"p" * 40
EDGE_LINES = [
    b"Dec  5 10:00:00 host systemd[1]: Started session 4 of user u4 (pid 1004).",
    b"Dec  5 10:00:00 UTC systemd[1]: msg",  # a time zone where the host would be: not skipped
    b"Dec  5 10:00:00 Z systemd[1]: msg",
    b"Dec  5 10:00:00 UTCx systemd[1]: msg",
    b"Dec  5 10:00:00 UT systemd[1]: msg",
    b"Dec  5 10:00:00 U systemd[1]: msg",
    b"Dec  5 10:00:00 host kernel: BUG: x",  # the kernel's lines are never skipped
    b"Dec  5 10:00:00 host kernel[0]: x",
    b"Dec  5 10:00:00 host kernelx: x",
    b"Dec  5 10:00:00 host kerne: x",
    b"Dec  5 10:00:00 host k: x",
    b"Dec  5 10:00:00 host kernel2[3]: x",
    b"Dec  5 10:00:00 " + _H + b" p: x",  # the longest host and program, and one character more
    b"Dec  5 10:00:00 " + _H + b"h p: x",
    b"Dec  5 10:00:00 h " + _P + b": x",
    b"Dec  5 10:00:00 h " + _P + b"p: x",
    b"Dec  5 10:00:00 h kernel" + _P[:34] + b": x",
    b"Dec  5 10:00:00 h kernel" + _P[:35] + b": x",
    b"Dec  5 10:00:00 UTC" + _H[:38] + b" p: x",
    b"Dec  5 10:00:00 UTC" + _H[:39] + b" p: x",
    b"Dec  5 10:00:00 host foo: text [   12.345678] BUG: unable to handle page fault",
    b"Dec  5 10:00:00 host foo: \x1b[1mbold",
]


@pytest.mark.parametrize("line", EDGE_LINES)
def test_the_re2_run_skips_what_the_re_run_skips(line: bytes) -> None:
    assert bool(_RE2_RUN.fullmatch(line + b"\n")) == bool(_ONE_OTHER_LINE.fullmatch(line + b"\n"))


def test_the_re2_run_is_not_vacuous() -> None:
    accepted = [line for line in EDGE_LINES if _RE2_RUN.fullmatch(line + b"\n")]
    assert 5 <= len(accepted) < len(EDGE_LINES)
    run = b"".join(line + b"\n" for line in EDGE_LINES[:1] * 3000)
    m = _RE2_RUN.match(run + b"Dec  5 10:00:00 host kernel: x\n")
    assert m is not None and m.end() == len(run)
