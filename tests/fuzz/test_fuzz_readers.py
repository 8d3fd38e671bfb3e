"""Fuzzing the readers of untrusted input (issue 19) with Hypothesis: the log reader, the crash-output
reader, journal JSON and export, the KB rule loader, and the line bounding and decompression of inputs.
The property is always the same: the reader returns (a list of crashes, a rule or errors, bytes) without
raising, whatever the input. Inputs are built from real kernel lines (the lab's null-member oops and a
published crash-utility transcript, tests/fixtures/) mixed with random text, so that the reader's deeper
paths are reached, not just its rejection of noise. Files in tests/fuzz/corpus/ are inputs that once failed."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
from pathlib import Path

import zstandard
from hypothesis import example, given
from hypothesis import strategies as st

from ktriage.crashout import parse_crash_output
from ktriage.inputs import Decoded, JournalJson, Lines, journal_export_filter
from ktriage.kb import load_rule_file
from ktriage.logs import scan_binary
from realdata import REPO

HERE = Path(__file__).parent
LAB_LINES = (REPO / "tests/fixtures/lab/null-member.console.log").read_text().splitlines()
CRASH_LINES = (REPO / "tests/fixtures/crashout/arm64_stack_overflow_pr100.txt").read_text().splitlines()
RULE = (REPO / "src/ktriage/kb/bugs/nf-conntrack-clash-refetch.yaml").read_text()
CORPUS = sorted((HERE / "corpus").glob("*"))

noise = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
pumps = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from([" ", "a", "0x", "+0x1/0x2", "[", "<", "\t", "ff "]),
    st.integers(0, 3000),
)


def _lines(pool: list[str]) -> st.SearchStrategy[str]:
    line = st.one_of(st.sampled_from(pool), noise, st.builds(lambda a, b: a + b, st.sampled_from(pool), pumps))
    return st.lists(line, max_size=80).map(lambda ls: "\n".join(ls) + "\n")


@given(_lines(LAB_LINES), st.sampled_from([b"\n", b"\r\n", b"\r"]))
@example("[    2.0] Kernel panic - not syncing: " + " " * 3000 + "x\n", b"\n")
@example("[    2.0] CPU: 0 PID: 1 Comm: x" + " " * 3000 + "y\n", b"\n")
def test_log_reader(text: str, eol: bytes) -> None:
    data = text.encode("utf-8", "surrogatepass").replace(b"\n", eol)
    crashes = list(scan_binary(Lines(io.BytesIO(data), cr_only=eol == b"\r"), "fuzz.log"))
    for c in crashes:
        assert c.title


@given(_lines(CRASH_LINES))
def test_crash_output_reader(text: str) -> None:
    for c in parse_crash_output(text, "fuzz.txt"):
        assert c.title


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["MESSAGE", "_TRANSPORT", "x"]), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(
    st.lists(
        st.one_of(
            json_values.map(json.dumps),
            st.sampled_from(LAB_LINES).map(lambda t: json.dumps({"MESSAGE": t[15:]})),
            noise,
        ),
        max_size=40,
    )
)
@example(["[" * 100000 + "]" * 100000])
@example(['{"MESSAGE": ["a", "b"]}', '{"MESSAGE": [300, -1]}', '{"MESSAGE": [true]}'])
def test_journal_json(lines: list[str]) -> None:
    f = JournalJson()
    for line in lines:
        out = f(line)
        assert out is None or isinstance(out, str)
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    list(scan_binary(io.BytesIO(data), "j.json", "journal", line_filter=JournalJson()))


@given(
    st.lists(
        st.one_of(
            st.sampled_from(LAB_LINES).map(lambda t: "MESSAGE=" + t[15:]), st.just("__CURSOR=s=1"), st.just(""), noise
        ),
        max_size=60,
    )
)
def test_journal_export(lines: list[str]) -> None:
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    list(scan_binary(io.BytesIO(data), "j.export", "journal", line_filter=journal_export_filter()))


rule_texts = st.one_of(
    st.builds(lambda a, b, c: RULE[:a] + b + RULE[a + c :], st.integers(0, len(RULE)), noise, st.integers(0, 50)),
    noise,
    st.builds(lambda a: "id: x\nsignature:\n  title_regex: " + json.dumps(a) + "\n", noise),
)


@given(rule_texts)
@example("a: &a [1, 1, 1]\nb: [*a, *a]\n")
@example("id: x\nsignature:\n  title_regex: '(?<=x)y'\n")
def test_kb_loader(text: str) -> None:
    rule, errors = load_rule_file(text, "fuzz.yaml", "user")
    assert (rule is None) == bool(errors)


@given(st.lists(st.integers(0, 40), max_size=20), st.integers(1, 20), st.integers(1, 9))
@example([10, 10, 0, 30], 9, 1)  # a line exactly at the limit, read a byte at a time (fixed in Lines._bound)
def test_lines_cut_exactly_at_the_limit(lengths: list[int], limit: int, step: int) -> None:
    data = b"\n".join(b"x" * n for n in lengths) + b"\n"

    class Slow:
        def __init__(self, d: bytes) -> None:
            self.d = d

        def read(self, n: int) -> bytes:
            out, self.d = self.d[:step], self.d[step:]
            return out

    got = b""
    lines = Lines(Slow(data), max_line=limit)  # type: ignore[arg-type]
    while chunk := lines.read(5):
        got += chunk
    assert got == b"\n".join(b"x" * min(n, limit) for n in lengths) + b"\n"
    assert lines.cut == sum(1 for n in lengths if n > limit)


COMPRESS = {
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bz2": bz2.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


# each library's one-shot decoder, which raises on a stream that is cut or corrupt
STRICT = {
    "gzip": gzip.decompress,
    "xz": lzma.decompress,
    "bz2": bz2.decompress,
    "zstd": lambda d: zstandard.ZstdDecompressor().decompress(d),
}


def _strict(kind: str, data: bytes) -> bytes | None:
    try:
        return STRICT[kind](data)
    except Exception:
        return None


@given(st.sampled_from(sorted(COMPRESS)), st.binary(max_size=3000), st.floats(0, 1), st.binary(max_size=8))
# the garbage completes the cut stream into another valid one: zstd of b"\x01" cut after its block header,
# then two zero bytes, is a whole frame holding b"\x00" (no checksum), so nothing can tell it is broken
@example("zstd", b"\x01", 0.875, b"\x00\x00")
def test_decompression_never_raises(kind: str, data: bytes, cut: float, garbage: bytes) -> None:
    comp = COMPRESS[kind](data)
    n = int(len(comp) * cut)
    broken = comp[:n] + garbage
    dec = Decoded(io.BytesIO(broken), kind)
    out = b""
    while chunk := dec.read(4096):
        out += chunk
    # a prefix of the original, or said to be broken, or what the library's strict decoder reads in it too
    assert data.startswith(out) or dec.broken or out == _strict(kind, broken)
    if broken == comp:
        assert out == data and dec.broken is None


def test_corpus_inputs_are_read() -> None:
    """Files that once broke a reader, read as a user would give them."""
    from ktriage.pipeline import Options, analyze_paths

    for path in CORPUS:
        rep = analyze_paths([str(path)], Options(analyze=False))
        assert rep.inputs[0].status in ("ok", "partial", "error")
