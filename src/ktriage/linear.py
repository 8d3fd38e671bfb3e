"""Patterns applied to input text, in time linear in that text.

Python's `re` backtracks: `(.*?)\\s*$` over a line with a long run of spaces, or a lazy identifier
followed by `\\+0x` over a 100,000-character symbol, takes time that grows with the square of the
line (a `Kernel panic` line padded with spaces took a minute). RE2 (google-re2) runs every pattern
in linear time, but its Python binding costs ~30 us a call against ~3 us for `re`, and a log has
millions of short lines. So a `Pattern` runs `re` on text up to `SHORT` characters, where even a
quadratic pattern is bounded (a few thousand steps), and RE2 beyond. A pattern RE2 cannot compile
(look-arounds, back-references) sees at most `BOUNDED` characters of a longer text instead.

Real kernel lines are shorter than 1,024 bytes (printk's LOG_LINE_MAX), so the two engines only
differ on input that is already bad (RE2's `\\s`, `\\w` and `\\d` are ASCII-only).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

SHORT = 256  # characters: `re` below, RE2 above
BOUNDED = 4096  # characters a pattern RE2 cannot compile sees of a longer text
MAX_LINE = 64 * 1024  # bytes: a longer input line is cut (see ktriage.inputs.cap_line)


class Pattern:
    """`re.Pattern`'s search/match/fullmatch/finditer/findall/sub, linear in the text (see the module)."""

    __slots__ = ("_rx", "_re2", "_tried", "pattern", "flags", "groupindex", "groups")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._rx = re.compile(pattern, flags)
        self._re2: Any = None
        self._tried = False
        self.pattern = pattern
        self.flags = flags
        self.groupindex = self._rx.groupindex
        self.groups = self._rx.groups

    def _long(self) -> Any:
        """The RE2 program, compiled on the first long text (most runs never need it)."""
        if not self._tried:
            self._tried = True
            self._re2 = compile_re2(self.pattern, self.flags)
        return self._re2

    def _pick(self, text: str) -> tuple[Any, str]:
        if len(text) <= SHORT:
            return self._rx, text
        r2 = self._long()
        if r2 is not None:
            return r2, text
        return self._rx, text[:BOUNDED]

    def search(self, text: str, pos: int = 0) -> Any:
        if len(text) <= SHORT:  # the common case without the call to _pick: a log makes millions of these
            return self._rx.search(text, pos)
        rx, text = self._pick(text)
        return rx.search(text, pos)

    def match(self, text: str, pos: int = 0) -> Any:
        if len(text) <= SHORT:
            return self._rx.match(text, pos)
        rx, text = self._pick(text)
        return rx.match(text, pos)

    def fullmatch(self, text: str) -> Any:
        rx, text = self._pick(text)
        return rx.fullmatch(text)

    def finditer(self, text: str) -> Iterator[Any]:
        rx, text = self._pick(text)
        return iter(rx.finditer(text))

    def findall(self, text: str) -> list[Any]:
        rx, text = self._pick(text)
        return list(rx.findall(text))

    def sub(self, repl: str | Callable[[Any], str], text: str, count: int = 0) -> str:
        rx, cut = self._pick(text)
        out: str = rx.sub(repl, cut, count)
        return out + text[len(cut) :]

    def __repr__(self) -> str:
        return f"linear.Pattern({self.pattern!r})"


def compile_re2(pattern: str, flags: int = 0) -> Any:
    """The pattern as an RE2 program, or None when RE2 cannot express it."""
    try:
        import re2
    except ImportError:  # pragma: no cover - google-re2 is a dependency
        return None
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 64 << 20  # large alternations (the trigger words) need more than the 8 MiB default
    if flags & re.IGNORECASE:
        options.case_sensitive = False
    if flags & re.DOTALL:
        options.dot_nl = True
    if flags & re.MULTILINE:
        pattern = "(?m)" + pattern
    try:
        return re2.compile(pattern, options)
    except re2.error:
        return None


def re2_error(pattern: str) -> str | None:
    """Why RE2 refuses a pattern (None when it compiles): the reason a knowledge-base rule is refused."""
    try:
        import re2
    except ImportError:  # pragma: no cover
        return "google-re2 is not installed"
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as e:
        why = e.args[0] if e.args else b""
        why = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        return why or "not an RE2 pattern (look-arounds and back-references are not supported)"
    return None


def compile(pattern: str, flags: int = 0) -> Pattern:  # noqa: A001 - mirrors re.compile
    return Pattern(pattern, flags)


class RE2Pattern:
    """A user-supplied pattern (knowledge-base rules) matched with RE2 only, whatever the text's length: no
    pattern a user writes can backtrack. Equal by its text, and picklable (the rules cache stores rules)."""

    __slots__ = ("pattern", "_rx")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._rx = compile_re2(pattern)
        if self._rx is None:
            raise ValueError(f"not an RE2 pattern: {pattern!r}")

    def search(self, text: str) -> Any:
        return self._rx.search(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RE2Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __getstate__(self) -> str:
        return self.pattern

    def __setstate__(self, state: str) -> None:
        self.pattern = state
        self._rx = compile_re2(state)

    def __repr__(self) -> str:
        return f"RE2Pattern({self.pattern!r})"
