"""Output of Red Hat's `crash` utility (pasted or saved, often inside prose) -> Crash records.

Entry points: `looks_like_crash_output` (cheap detection) and `parse_crash_output`.
Read: the `sys` header (startup banner or `crash> sys`), `bt` / `bt -a` task blocks (frames,
`[exception RIP: ...]` blocks with registers, `--- <IRQ stack> ---` switches), `log` sections
(handed to the log reader; a full oops there wins and gets the sys/bt facts merged in) and
`dis` listings (kept as `crash-dis` related events for later analyzers).
"""

from __future__ import annotations

import re

from ktriage.model import Crash

__all__ = ["looks_like_crash_output", "parse_crash_output"]

_HEAD = 64 * 1024
_PROMPT = re.compile(r"(?:^|\s)crash[\w.\-]*> [a-z]", re.M)
_SYS = re.compile(r"^[ \t\xa0]*(?:KERNEL|SYSTEM MAP): \S.*\n[ \t\xa0]*(?:DUMPFILE|DEBUG KERNEL|CPUS): ", re.M)
_BT = re.compile(
    r"PID:[ \xa0]+\d+[ \t\xa0]+TASK:[ \xa0]+[0-9a-f]+[ \t\xa0]+CPU:[ \xa0]+\d+[ \t\xa0]+COMMAND:[ \xa0]+\""
    r"[^\"\n]*\"\s+#0[ \xa0]+\["
)


def looks_like_crash_output(text: str) -> bool:
    """True when the first 64 KB show a `crash>` prompt, a `sys` header or a `bt` task header + `#0 [`."""
    head = text[:_HEAD]
    return bool(_PROMPT.search(head) or _SYS.search(head) or _BT.search(head))


def parse_crash_output(text: str, path: str) -> list[Crash]:
    """The crashes the crash-output parts of `text` describe: one per panicking task's bt."""
    from ktriage.crashout.build import session_crashes
    from ktriage.crashout.reader import pieces, sessions

    doc = pieces(text)
    out: list[Crash] = []
    for s in sessions(text):
        out += session_crashes(s, path, doc)
    return sorted(out, key=lambda c: c.source.first_line)
