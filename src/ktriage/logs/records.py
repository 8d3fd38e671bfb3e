"""From a raw input line to a kernel log record.

Every form a kernel message reaches a person in wraps the same text in a different prefix:
dmesg `[  12.345678]`, caller ids `[ T123]`, `dmesg -T` dates, syslog and journalctl
`Mon DD hh:mm:ss host kernel:`, printk levels `<4>`, mail quoting `> `, serial-console CRLF
and ANSI escapes. This module removes them all, one rule at a time, and keeps what they
told us (timestamp, caller, whether the line came from the kernel at all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    lineno: int  # 1-based line number in the input
    text: str  # the message, prefixes removed
    ts: float | None = None
    caller: str | None = None  # "T123" / "C1" from CONFIG_PRINTK_CALLER
    origin: str = "kernel"  # kernel, other (a syslog line of another program)


_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()][A-Za-z0-9]|[=>78c])")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
# "Nov 22 04:21:52 host kernel: msg", "2022-06-25T10:05:32.1+08:00 host kernel: msg",
# localized months ("11月 22 04:21:52", "Mär 22 ...", "janv. 22 ..."): anything short before the time.
_SYSLOG = re.compile(
    r"^(?:<\d{1,3}>)?(?:\d{4}-\d\d-\d\d[T ]|(?:\S{1,12}\s+){1,3}?)"
    r"\d{1,2}:\d\d:\d\d(?:[.,]\d+)?(?:\s?(?:[+-]\d\d:?\d\d|Z|UTC))?\s+"
    r"(?P<host>\S+)\s+(?P<prog>[^\s:\[]+)(?:\[\d+\])?:\s?(?P<msg>.*)$"
)
_LEVEL = re.compile(r"^<(\d{1,3})>")
_DMESG_T = re.compile(r"^\[(?=[^\]]*\d\d:\d\d:\d\d)[^\]]{8,40}\]\s?")
_INDENTED_TS = re.compile(r"^\s+(?:<\d{1,3}>)?\[\s*\d+\.\d+\]")
_TS = re.compile(r"^\[\s*(\d+\.\d+)\]")
_CALLER = re.compile(r"^\[\s*([TC]\d+)\]")
# "[ 1234.567890] host kernel: msg" (journalctl -o short-monotonic)
_HOST_KERNEL = re.compile(r"^\S+ kernel: ")
# A dmesg timestamp in the middle of a line: the log was flattened (a CentOS 7 oops pasted into a blog post).
_INNER_TS = re.compile(r"(?<=\S)\s+(?=(?:<\d>)?\[\s*\d+\.\d{6}\])")


def clean(line: str) -> str:
    """Remove what terminals and serial consoles add: CR, ANSI escapes, control bytes."""
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    line = line.rstrip("\r\n")
    if "\r" in line:  # "\r" inside: a console overwrote the line; keep the last version
        line = line.rsplit("\r", 1)[-1] or line.replace("\r", "")
    return _CTRL.sub("", line)


def split_flattened(line: str) -> list[str]:
    """Split a line that holds several dmesg records (newlines lost on the way)."""
    parts = _INNER_TS.split(line)
    return parts if len(parts) > 1 else [line]


def strip_prefixes(text: str) -> tuple[str, float | None, str | None, str]:
    """Return (message, timestamp, caller, origin) for one physical line."""
    ts: float | None = None
    caller: str | None = None
    origin = "kernel"
    if text.lstrip().startswith(">"):
        text = _QUOTE.sub("", text)
    if text.startswith("[") and not _TS.match(text):
        m = _DMESG_T.match(text)  # before syslog: "[Sun Nov 22 04:21:52 2026] " holds a time too
        if m:
            text = text[m.end() :]
    m = _SYSLOG.match(text)
    if m:
        prog = m.group("prog")
        text = m.group("msg")
        if prog != "kernel":
            origin = "other"
    if text[:1] in (" ", "\t") and _INDENTED_TS.match(text):
        text = text.lstrip()  # a log indented in a mail or a web page
    m = _LEVEL.match(text)
    if m:
        text = text[m.end() :]
    m = _DMESG_T.match(text)
    if m and not _TS.match(text):
        text = text[m.end() :]
    m = _TS.match(text)
    if m:
        ts = float(m.group(1))
        text = text[m.end() :]
        c = _CALLER.match(text)
        if c:
            caller = c.group(1)
            text = text[c.end() :]
        if text.startswith(" "):
            text = text[1:]
        h = _HOST_KERNEL.match(text)
        if h:
            text = text[h.end() :]
    if origin == "kernel" and text.startswith("<") and _LEVEL.match(text):
        text = text[_LEVEL.match(text).end() :]  # type: ignore[union-attr]
    return text, ts, caller, origin


def records(lines: Iterable[tuple[int, str]]) -> Iterator[Record]:
    """Turn (lineno, raw line) pairs into Records, splitting flattened lines."""
    for lineno, raw in lines:
        line = clean(raw)
        parts = split_flattened(line) if "[" in line else [line]
        for part in parts:
            text, ts, caller, origin = strip_prefixes(part)
            yield Record(lineno, text, ts, caller, origin)
