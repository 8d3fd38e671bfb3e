"""The literal anchors of the crash-header patterns: the chunk pre-filter's data.

A big log is mostly lines that cannot start a report. The log reader skips a block of them at C speed when
the block holds none of these anchors, and reads line by line only around one. For that to lose nothing, an
anchor set must be a *necessary* condition: every text a pattern matches contains one of its anchors. The
anchors are derived from each pattern's syntax tree (the literal runs every match must contain, as in
RE2's prefilter or a trigram index), never typed by hand next to it, so a header pattern added to
`formats.FORMATS` gets its anchors with it; a pattern they cannot be derived from (no literal of 3
characters or more that every match holds) is listed by `underived()`, and a test fails on it.

Besides the headers, what else changes the reader's state while no report is open is anchored too:
the boot banner (it resets the context), pstore part headers (a new part may begin inside a report),
and the bytes the line cleaner removes (a control byte or an ANSI escape inside a header would hide the
anchor from a byte search, so a line holding one is read line by line), and JSON string escapes.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from ktriage.logs.formats import FORMATS
from ktriage.logs.pstore import PART_HEADER

_sre: Any = importlib.import_module("re._parser" if sys.version_info >= (3, 11) else "sre_parse")

MIN_ANCHOR = 3  # characters: a shorter literal would stop the search on most lines
_MAX_SET = 32  # alternatives a literal run may expand to (`(?:a|b)(?:c|d)` -> ac, ad, bc, bd) before it is cut
_SMALL_CLASS = 4  # a character class of at most this many characters is expanded (`[Kk]ernel`)

# the scanner's own line patterns that change its state while no report is open (see Scanner.feed)
BOOT_BANNER = r"^Linux version \d"
STATE_PATTERNS: tuple[str, ...] = (BOOT_BANNER, PART_HEADER.pattern)
# bytes `records.clean` removes (C0 controls but tab, LF and CR, DEL; ESC starts an ANSI sequence) and the JSON
# escapes `records.json_text` decodes into another character: a header could hide behind either
HIDDEN = rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\\[ubf/\\" + rb'"]'


class _Lit:
    """What a piece of a pattern tells about the text it matches: `exact`, the finite set of strings it
    matches (None when unknown or too many), and `anchors`, a set one of which every match contains."""

    __slots__ = ("exact", "anchors")

    def __init__(self, exact: set[str] | None, anchors: set[str] | None) -> None:
        self.exact = exact
        self.anchors = anchors


def _better(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    """The more selective of two anchor sets: the one whose shortest string is longest, then the smaller."""
    if not a:
        return b or None
    if not b:
        return a
    ka, kb = (min(map(len, a)), -len(a)), (min(map(len, b)), -len(b))
    return a if ka >= kb else b


def _seq(items: Sequence[tuple[Any, Any]]) -> _Lit:
    run: set[str] | None = {""}
    best: set[str] | None = None
    exact_all = True
    for op, av in items:
        lit = _node(op, av)
        if lit.exact is not None and run is not None and len(run) * len(lit.exact) <= _MAX_SET:
            run = {a + b for a in run for b in lit.exact}
            continue
        exact_all = False
        if run and "" not in run:
            best = _better(best, run)
        best = _better(best, lit.anchors)
        run = set(lit.exact) if lit.exact is not None and len(lit.exact) <= _MAX_SET else {""}
    if run and "" not in run:
        best = _better(best, run)
    return _Lit(run if exact_all else None, best)


def _node(op: Any, av: Any) -> _Lit:
    name = op.name
    if name == "LITERAL":
        return _Lit({chr(av)}, None)
    if name == "IN":
        chars = [chr(v) for o, v in av if o.name == "LITERAL"]
        if len(chars) == len(av) and len(chars) <= _SMALL_CLASS:
            return _Lit(set(chars), None)
        return _Lit(None, None)
    if name == "AT":
        return _Lit({""}, None)  # ^ $ \b: zero width
    if name == "SUBPATTERN":
        add_flags, del_flags = av[1], av[2]
        if add_flags & re.IGNORECASE or del_flags:
            return _Lit(None, None)  # a case-insensitive part: no literal anchor (the test lists the pattern)
        return _seq(av[3])
    if name == "BRANCH":
        parts = [_seq(b) for b in av[1]]
        exact: set[str] | None = set()
        for p in parts:
            exact = exact | p.exact if exact is not None and p.exact is not None else None
        if exact is not None and len(exact) > _MAX_SET:
            exact = None
        anchors: set[str] | None = set()
        for p in parts:
            own = _better(p.anchors, p.exact if p.exact and "" not in p.exact else None)
            anchors = anchors | own if anchors is not None and own else None
        return _Lit(exact, anchors or None)
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        lo, hi, sub = av
        inner = _seq(sub)
        if lo == hi == 1:
            return inner
        if inner.exact is not None and hi <= 2 and lo <= hi:
            out = {""} if lo == 0 else set()
            if hi >= 1 and lo <= 1:
                out |= inner.exact
            if hi == 2:
                out |= {a + b for a in inner.exact for b in inner.exact}
            if len(out) <= _MAX_SET:
                return _Lit(out, None)
        if lo >= 1:
            return _Lit(None, _better(inner.anchors, inner.exact if inner.exact and "" not in inner.exact else None))
        return _Lit(None, None)
    if name in ("ASSERT", "ASSERT_NOT"):
        return _Lit({""}, None)  # a look-around consumes nothing; what it requires is not relied on
    return _Lit(None, None)  # ANY, NOT_LITERAL, CATEGORY, GROUPREF, ...


def derive(pattern: str) -> frozenset[str] | None:
    """Literals of at least MIN_ANCHOR characters, one of which every text `pattern` matches contains; None when
    the pattern does not require one (a case-insensitive or wholly variable pattern)."""
    tree = _sre.parse(pattern)
    if tree.state.flags & re.IGNORECASE:
        return None
    lit = _seq(list(tree))
    found = _better(lit.anchors, lit.exact if lit.exact and "" not in lit.exact else None)
    if not found or min(map(len, found)) < MIN_ANCHOR:
        return None
    return frozenset(minimal(found))


def underived(patterns: Iterable[str]) -> list[str]:
    """The patterns no anchor set could be derived from (each needs rewriting with a literal in it)."""
    return [p for p in patterns if derive(p) is None]


def header_patterns() -> list[str]:
    return [f.header.pattern for f in FORMATS]


def minimal(anchors: Iterable[str]) -> list[str]:
    """Drop an anchor that holds another one (a text with `BUG: KASAN: ` also holds `BUG: `)."""
    out: list[str] = []
    for a in sorted(set(anchors), key=len):
        if not any(b in a for b in out):
            out.append(a)
    return sorted(out)


def all_anchors() -> list[str]:
    """Every anchor the pre-filter searches for: the headers' and the scanner state's."""
    found: list[str] = []
    for p in header_patterns() + list(STATE_PATTERNS):
        got = derive(p)
        if got is None:
            raise ValueError(f"no literal anchor can be derived from the log pattern {p!r}")
        found += got
    return minimal(found)


def prefilter_patterns() -> list[bytes]:
    """The anchors, escaped, and the hidden-text bytes: what either engine searches a block for."""
    return [re.escape(a.encode()) for a in all_anchors()] + [HIDDEN]


def prefilter_pattern() -> bytes:
    """One alternation over prefilter_patterns, for a single C-speed search of a block."""
    return b"|".join(prefilter_patterns())


class AnchorSearch(Protocol):
    """The first anchor in a block: what the scanner asks of either engine."""

    engine: str

    def first_end(self, data: bytes, pos: int = 0, end: int | None = None) -> int | None:
        """The offset just past the first anchor in data[pos:end], or None. No anchor holds a newline, so the
        line this offset is in is the first line that holds an anchor."""
        ...


class Re2Search:
    """RE2 (a DFA, linear, several times faster than `re` on a literal alternation), or `re` where google-re2
    is missing."""

    engine = "re2"

    def __init__(self) -> None:
        try:
            import re2

            self._rx: Any = re2.compile(prefilter_pattern())
        except Exception:  # pragma: no cover - the standard engine gives the same matches, slower
            self._rx = re.compile(prefilter_pattern())
            self.engine = "re"

    def first_end(self, data: bytes, pos: int = 0, end: int | None = None) -> int | None:
        m = self._rx.search(data, pos, len(data) if end is None else end)
        return None if m is None else int(m.end())


class HyperscanSearch:
    """The same search with Hyperscan (`pip install 'ktriage[fast]'`): SIMD literal matching, 3.9 GB/s against
    RE2's 0.64 GB/s on the scale benchmark's syslog (bench/scale_bench.py), which is what brings a large syslog
    near grep's speed. Matches are reported in order of their end, so the first one reported, the scan then
    stopped, ends first; its line is the first line with an anchor, as with RE2."""

    engine = "hyperscan"

    def __init__(self) -> None:
        import threading

        import hyperscan

        self._hs = hyperscan
        pats = prefilter_patterns()
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=pats, ids=list(range(len(pats))), flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(pats)
        )
        self._lock = threading.Lock()  # one scratch space per database: scans in threads take turns

    def first_end(self, data: bytes, pos: int = 0, end: int | None = None) -> int | None:
        found: list[int] = []

        def stop(_id: int, _from: int, to: int, _flags: int, _ctx: object) -> bool:
            found.append(to)
            return True  # the first match is all the reader needs

        view = memoryview(data)[pos : len(data) if end is None else end]
        with self._lock:
            try:
                # the binding takes any buffer; its stubs say bytes (a slice would copy a 4 MB block per call)
                self._db.scan(cast(bytes, view), match_event_handler=stop)
            except self._hs.ScanTerminated:
                pass
        return pos + found[0] if found else None


def compile_prefilter(engine: str | None = None) -> AnchorSearch:
    """Hyperscan when it is installed (the `fast` extra), else RE2; `engine` chooses one (tests compare them)."""
    if engine in (None, "hyperscan"):
        try:
            return HyperscanSearch()
        except ImportError:
            if engine == "hyperscan":
                raise
    return Re2Search()


# --- what the reader may step over inside a report or before a log's first kernel line ---------------------------
# `records.OTHER_SYSLOG_RUN` (a run of other programs' syslog lines) in RE2, ~4x faster than `re` on a big syslog.
# RE2 has no look-ahead: the two the `re` pattern uses (the host is not `Z`/`UTC`, the program is not `kernel`)
# become the complement of those words, spelled out (tests/test_prefilter.py checks both accept the same lines).
_R = frozenset(range(0x21, 0x3A)) | frozenset(range(0x3B, 0x5B)) | frozenset(range(0x5C, 0x7F))  # no : or [
_HOST_FIRST = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _cls(chars: Iterable[int]) -> str:
    return "[" + "".join(f"\\x{c:02x}" for c in sorted(chars)) + "]"


def not_words(words: Iterable[bytes], first: frozenset[int], rest: frozenset[int], maxlen: int) -> str:
    """A regular expression for the strings of 1..maxlen characters (the first in `first`, the others in `rest`)
    that are none of `words`: a negative look-ahead RE2 can run."""
    rest_cls = _cls(rest)

    def node(suffixes: set[bytes], allowed: frozenset[int], remaining: int) -> str:
        heads = {s[0] for s in suffixes}
        alts = []
        if free := allowed - heads:
            alts.append(_cls(free) + (f"{rest_cls}{{0,{remaining - 1}}}" if remaining > 1 else ""))
        for h in sorted(heads & allowed):
            tails = {s[1:] for s in suffixes if s[0] == h}
            ends_here = b"" in tails
            tails.discard(b"")
            if remaining == 1:
                if not ends_here:
                    alts.append(f"\\x{h:02x}")
                continue
            sub = node(tails, rest, remaining - 1) if tails else f"{rest_cls}{{1,{remaining - 1}}}"
            alts.append(f"\\x{h:02x}(?:{sub}{'' if ends_here else '|'})")
        return "(?:" + "|".join(alts) + ")"

    return node(set(words), first, maxlen)


OTHER_LINE = (
    r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "
    + not_words({b"Z", b"UTC"}, _HOST_FIRST, _R, 41)
    + " "
    + not_words({b"kernel"}, _R, _R, 40)
    + r"(?:\[\d{1,10}\])?:[^\x00-\x1f\x7f\[]{0,180}\n"
)


def compile_other_run() -> Any:
    """One or more other programs' syslog lines, matched at a position (RE2; `re` where google-re2 is missing)."""
    pattern = ("(?:" + OTHER_LINE + ")+").encode()
    try:
        import re2

        return re2.compile(pattern)
    except Exception:  # pragma: no cover
        return re.compile(pattern)
