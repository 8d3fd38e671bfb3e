"""Every pattern ktriage applies to input text runs in (about) linear time (issue 19): each compiled pattern
held by a ktriage module (module globals, and the tables of formats, frames, registers...) is searched in
strings built to make a backtracking engine go quadratic or worse: a prefix that starts a match, then a long
run of one piece (spaces, identifier characters, `0x`...), then a character that makes the match fail. A
linear pattern takes well under 10 ms on these 20,000-character strings; the ones that broke took seconds
(a `Kernel panic - not syncing:` line padded with spaces took a minute)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import time

import pytest

import ktriage
from ktriage.linear import Pattern

PREFIXES = (
    "",
    " ",
    "Kernel panic - not syncing: x",
    "CPU: 0 PID: 1 Comm: x",
    "WARNING: CPU: 0 PID: 1 at ",
    "INFO: task x:1 blocked",
    "RIP: 0010:",
    " [<ffffffff81000000>] ",
)
PUMPS = (" ", "\t", "a", "a.", "a_", "aB", "0x", "+0x1", "[", "ff ", "a ")
N = 20000
LIMIT = 0.5  # seconds for one search; a quadratic pattern takes several


def _patterns() -> list[tuple[str, object]]:
    found: dict[tuple[str, int], tuple[str, object]] = {}

    def walk(o: object, depth: int, where: str) -> None:
        if isinstance(o, (re.Pattern, Pattern)):
            found.setdefault((o.pattern, o.flags), (where, o))
            return
        if depth > 3:
            return
        if isinstance(o, (list, tuple, set, frozenset)):
            for x in o:
                walk(x, depth + 1, where)
        elif isinstance(o, dict):
            for x in o.values():
                walk(x, depth + 1, where)
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                walk(getattr(o, f.name, None), depth + 1, where)

    for info in pkgutil.walk_packages(ktriage.__path__, "ktriage."):
        if info.name.split(".")[1] in ("server", "fleet", "cli"):
            continue
        try:
            mod = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - an optional dependency missing: its patterns are not reachable
            continue
        for name, value in vars(mod).items():
            if not isinstance(value, type) and not callable(value) or isinstance(value, (re.Pattern, Pattern)):
                walk(value, 0, f"{info.name}.{name}")
    return sorted(found.values(), key=lambda wo: wo[0])


PATTERNS = _patterns()


def test_patterns_found() -> None:
    assert len(PATTERNS) > 200  # the formats table alone holds ~130


def _timed(rx: re.Pattern[str] | Pattern, text: str) -> float:
    subject: str | bytes = text.encode() if isinstance(rx.pattern, bytes) else text
    t = time.perf_counter()
    rx.search(subject)  # type: ignore[arg-type]
    return time.perf_counter() - t


@pytest.mark.parametrize("where,rx", PATTERNS, ids=[f"{w}:{i}" for i, (w, _) in enumerate(PATTERNS)])
def test_pattern_is_linear(where: str, rx: re.Pattern[str] | Pattern) -> None:
    for pre in PREFIXES:
        for pump in PUMPS:
            text = pre + pump * (N // len(pump)) + "\x00"
            took = _timed(rx, text)
            if took >= LIMIT:  # a busy machine: a pause is not a quadratic pattern, a second slow run is
                took = min(took, _timed(rx, text))
            assert took < LIMIT, (
                f"{where} /{rx.pattern[:120]}/ took {took:.2f} s on {pre!r} + {pump!r} x {N // len(pump)}"
            )
