"""From a raw input line to a kernel log record.

Every form a kernel message reaches a person in wraps the same text in a different prefix:
dmesg `[  12.345678]`, caller ids `[ T123]`, `dmesg -T` dates, syslog and journalctl
`Mon DD hh:mm:ss host kernel:`, printk levels `<4>`, mail quoting `> `, serial-console CRLF
and ANSI escapes. This module removes them all, one rule at a time, and keeps what they
told us (timestamp, caller, whether the line came from the kernel at all).
"""

from __future__ import annotations

import json
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
    stamp: str | None = None  # the syslog time before the message: tells a repeated line from a doubled console


_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()][A-Za-z0-9]|[=>78c])")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
# "Nov 22 04:21:52 host kernel: msg", "2022-06-25T10:05:32.1+08:00 host kernel: msg",
# localized months ("11月 22 04:21:52", "Mär 22 ...", "janv. 22 ..."): anything short before the time.
# A relay may write the sender's address before its name: "Aug 25 16:00:39 192.168.2.9 OpenWrt kernel: msg".
_SYSLOG = re.compile(
    r"^(?:<\d{1,3}>)?(?:\d{4}-\d\d-\d\d[T ]|(?:\S{1,12}\s+){1,3}?)"
    r"\d{1,2}:\d\d:\d\d(?:[.,]\d+)?(?:\s?(?:[+-]\d\d:?\d\d|Z|UTC))?\s+"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}\s+(?=\S+\s+kernel:))?(?P<host>\S+)\s+(?P<prog>[^\s:\[]+)(?:\[\d+\])?:\s?(?P<msg>.*)$"
)
_LEVEL = re.compile(r"^<(\d{1,3})>")
_DMESG_T = re.compile(r"^\[(?=[^\]]*\d\d:\d\d:\d\d)[^\]]{8,40}\]\s?")
_INDENTED_TS = re.compile(r"^\s+(?:<\d{1,3}>)?\[\s*\d+\.\d+\]")
_TS = re.compile(r"^\[\s*(\d+\.\d+)\]")
# what a syslog header's and a `dmesg -T` date's clock time both hold (a line without it cannot carry either; a
# pattern starting with a literal is searched ~5x faster than one starting with `\d`)
_CLOCK = re.compile(r":\d\d:\d\d")
_CALLER = re.compile(r"^\[\s*([TC]\d+)\]")
# "[ 1234.567890] host kernel: msg" (journalctl -o short-monotonic)
_HOST_KERNEL = re.compile(r"^\S+ kernel: ")
# A dmesg timestamp in the middle of a line: the log was flattened (a CentOS 7 oops pasted into a blog post).
_INNER_TS = re.compile(r"(?<=\S)\s+(?=(?:<\d>)?\[\s*\d+\.\d{6}\])")


# Collector and paste prefixes the rules above do not know, tried in order before them (each anchored, bounded):
_COLLECTOR_PREFIXES: tuple[re.Pattern[str], ...] = (
    # OpenWrt logread: "Sun Sep  1 19:30:19 2019 kern.warn kernel: [138620.515738] msg"
    re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} [a-z]{2,8}\.[a-z]{2,7} kernel: "),
    # syslog without a host name (busybox, some routers): "May 18 14:56:06 kernel: msg"
    re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d kernel: "),
    # log shipper with the source file: "2022-11-12 10:10:59 +0800 | messages | Nov 12 10:10:59 host kernel: msg"
    re.compile(
        r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?: ?(?:[+-]\d\d:?\d\d|Z|UTC))? \| [\w.\-/]{1,64} \| "
    ),
    # Kubernetes CRI container log: "2023-01-02T03:04:05.123456789Z stdout F msg"
    re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d) (?:stdout|stderr) [FP] "),
    # syslogd's wall message body: " kernel:[14802.137324] msg" (under "Message from syslogd@host at ...")
    re.compile(r"^ ?kernel:(?=\S)"),
    # `journalctl -o cat`-like copies that keep the identifier: "kernel: msg"
    re.compile(r"^kernel: "),
    # a dmesg timestamp cut after its dot by whoever pasted it: "[  240.] msg"
    re.compile(r"^\[\s{0,12}\d{1,12}\.\] ?"),
    # an editor's or pager's line number before a dmesg line: "  11746 [46223316.652645] msg"
    re.compile(r"^\s{0,8}\d{1,9}\s{1,8}(?=(?:<\d{1,3}>)?\[\s{0,12}\d{1,12}\.\d{1,9}\])"),
)
# "[ 1.234] kernel: msg" (journalctl -k -o short-monotonic without the host name)
_KERNEL_WORD = re.compile(r"^kernel: ")
# rsyslog's escape of a continuation line's newline/tab ("#012but task is already holding lock:")
_RSYSLOG_ESC = re.compile(r"^(?:#01[12]){1,4}")


def _strip_collector(text: str) -> str:
    for rx in _COLLECTOR_PREFIXES:
        m = rx.match(text)
        if m:
            return text[m.end() :]
    return text


def clean(line: str) -> str:
    """Remove what terminals and serial consoles add: CR, ANSI escapes, control bytes."""
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    line = line.rstrip("\r\n")
    if "\r" in line:  # "\r" inside: a console overwrote the line; keep the last version
        line = line.rsplit("\r", 1)[-1] or line.replace("\r", "")
    return _CTRL.sub("", line)


# Where an oops flattened into one line without timestamps (a mail archive, a web page) had its line breaks:
# the line forms every report has. Used only on long lines holding several of them.
_OOPS_LINE_START = re.compile(
    r" (?=Unable to handle kernel |Internal error: |Modules linked in:|CPU: \d|PC is at |LR is at |pc : \[<|"
    r"Flags: [NnZzCcVv]{4} |Process \S{1,64} \(pid: |Stack: \(|Backtrace: |\[<[0-9a-f]{8,16}>\] \(|Code: |"
    r"Kernel panic - not syncing|Call Trace:|RIP: |Hardware name: )"
)
_FLAT_MIN = 300


def split_flattened(line: str) -> list[str]:
    """Split a line that holds several dmesg records (newlines lost on the way)."""
    if len(line) <= _FLAT_MIN and line.find("[", 1) < 0:
        return [line]  # a short line with no `[` past its first character holds no record but its own
    parts = _INNER_TS.split(line)
    if len(parts) > 1:
        return parts
    if len(line) > _FLAT_MIN and "[" in line:
        parts = _OOPS_LINE_START.split(line)
        if len(parts) >= 5:
            return parts
    return [line]


def strip_prefixes(text: str) -> tuple[str, float | None, str | None, str, str | None]:
    """Return (message, timestamp, caller, origin, syslog time) for one physical line."""
    if text[:1] == "[" and (m := _TS.match(text)) and _CLOCK.search(text) is None:
        # the common dmesg line, "[   12.345678] msg": no collector prefix, quote, dmesg -T date or syslog header
        # can start it (each of the last two needs a clock time), so the rules before the timestamp are skipped
        msg, by = _after_ts(text[m.end() :])
        return _tail(msg), float(m.group(1)), by, "kernel", None
    ts: float | None = None
    stamp: str | None = None
    caller: str | None = None
    origin = "kernel"
    text = _strip_collector(text)
    if text.lstrip().startswith(">"):
        text = _QUOTE.sub("", text)
    if text.startswith("[") and not _TS.match(text):
        m = _DMESG_T.match(text)  # before syslog: "[Sun Nov 22 04:21:52 2026] " holds a time too
        if m:
            text = text[m.end() :]
    m = _SYSLOG.match(text)
    if m:
        prog = m.group("prog")
        stamp = text[: m.start("host")].strip()
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
        text, caller = _after_ts(text[m.end() :])
    elif text.startswith("[") and (c := _CALLER.match(text)):
        # CONFIG_PRINTK_CALLER with printk.time=0: "[    C1] watchdog: BUG: soft lockup ..."
        caller = c.group(1)
        text = text[c.end() :].removeprefix(" ")
    if origin == "kernel":
        text = _tail(text)
    elif text.startswith("#01"):
        text = _RSYSLOG_ESC.sub("", text)
    return text, ts, caller, origin, stamp


def _after_ts(text: str) -> tuple[str, str | None]:
    """What follows a dmesg timestamp: the caller id, the separating space, a journal's "host kernel: "."""
    caller: str | None = None
    c = _CALLER.match(text) if text[:1] == "[" else None
    if c:
        caller = c.group(1)
        text = text[c.end() :]
    if text.startswith(" "):
        text = text[1:]
    if "kernel: " in text:  # what both forms hold (most lines do not: two matches saved)
        h = _HOST_KERNEL.match(text) or _KERNEL_WORD.match(text)
        if h:
            text = text[h.end() :]
    return text, caller


def _tail(text: str) -> str:
    """The prefixes a kernel message can still carry after all the others: a printk level, rsyslog's escapes."""
    if text.startswith("<") and (m := _LEVEL.match(text)):
        text = text[m.end() :]
    if text.startswith("#01"):
        text = _RSYSLOG_ESC.sub("", text)
    return text


# A classic syslog line of another program ("Dec  5 10:00:00 host systemd[1]: msg"), in the one shape whose
# reading `records` is sure to give: one Record of origin "other" (no collector prefix can match a line that begins
# with a month and a day, a host that is not a time zone keeps _SYSLOG from reading the host as one).
_OTHER_SYSLOG = re.compile(
    r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?!(?:Z|UTC) )[A-Za-z0-9][^\s:]* (?!kernel[:\[])[^\s:\[]+(?:\[\d+\])?:"
)


def other_program_line(line: str) -> bool:
    """True when `records` would read `line` as one syslog line of another program than the kernel: the scanner
    ignores such lines, and a big syslog is mostly made of them, so they are worth recognising cheaply."""
    return (
        _OTHER_SYSLOG.match(line) is not None
        and _CTRL.search(line) is None
        and ("[" not in line or not _flattened(line))
    )


# what every dmesg record glued into another line shows (a cheap search before the split that places it)
_BARE_TS = re.compile(r"\[\s*\d+\.\d{6}\]")


def _flattened(line: str) -> bool:
    """`split_flattened` would cut the line (asked only when it could: a timestamp inside, or a long line)."""
    if len(line) <= _FLAT_MIN and _BARE_TS.search(line) is None:
        return False
    return len(split_flattened(line)) > 1


# A run of such lines in raw bytes, each kept to what the test above accepts for sure: printable ASCII in the host
# and program names (Unicode spaces would split them differently), no control byte, no `[` after the program
# (no glued dmesg record), and short enough (under 300 bytes) that no flattened oops is split out of it.
OTHER_SYSLOG_RUN = re.compile(
    rb"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?!(?:Z|UTC) )[A-Za-z0-9][\x21-\x39\x3b-\x5a\x5c-\x7e]{0,40} "
    rb"(?!kernel[:\[])[\x21-\x39\x3b-\x5a\x5c-\x7e]{1,40}(?:\[\d{1,10}\])?:[^\x00-\x1f\x7f\[]{0,180}\n){1,1024}"
)  # at most 1024 lines a match: `re` keeps a backtracking mark per repeat (an unbounded run held 27 MB a chunk)


# The field that holds the log line in one-object-a-line exports: Docker json-file (`log`), Loki (`line`),
# Elasticsearch/Graylog/Logstash (`message`, also under `_source`), journald JSON (`MESSAGE`).
_JSON_TEXT_KEYS = ("log", "message", "MESSAGE", "line", "msg", "full_message")


def json_text(line: str) -> list[str] | None:
    """The log text of one JSON object a line (its lines, for a multi-line message), else None."""
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("_source"), dict):
        obj = obj["_source"]
    for key in _JSON_TEXT_KEYS:
        v = obj.get(key)
        if isinstance(v, str):
            return v.splitlines() or [""]
    return None


def records(lines: Iterable[tuple[int, str]]) -> Iterator[Record]:
    """Turn (lineno, raw line) pairs into Records, splitting flattened lines and unwrapping JSON-a-line exports."""
    for lineno, raw in lines:
        yield from line_records(lineno, raw)


def line_records(lineno: int, raw: str) -> list[Record]:
    """The Records of one input line (a list: the scanner reads a line at a time, without a generator's cost)."""
    if raw[:1] == "{" or (raw[:1].isspace() and raw.lstrip()[:1] == "{"):
        texts = json_text(raw)
        if texts is not None:
            return list(records((lineno, t) for t in texts))
    line = clean(raw)
    if "[" not in line:
        return [Record(lineno, *strip_prefixes(line))]
    return [Record(lineno, *strip_prefixes(part)) for part in split_flattened(line)]
