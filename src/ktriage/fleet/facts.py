"""What the fleet keeps of one crash dict: its identity, signature, host and knowledge-base verdict.

Everything here reads the `ktriage.report/1` crash dict the pipeline wrote: the known-bug match and its
"does this kernel carry the fix" answer come from ktriage.kb (run by the pipeline, or again by
`rebucket`), never from a second judgement of the fleet's own.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["KBFacts", "content_hash", "crash_identity", "crash_signature", "kb_facts", "log_times"]

# Parts of a crash dict that say where and how it was read, not what happened: the same crash read
# from another file, at another line, from the vmcore instead of the console log (whose `system` holds the
# dump's facts), with other debug info at hand, has the same content hash.
_NOT_CONTENT = ("source", "findings", "skipped", "known_bugs", "system")


def content_hash(crash: dict[str, Any]) -> str:
    """The crash text's normalized hash: registers, frames, task, taint, code bytes, title, related log
    lines (their text, not their line numbers)."""
    d = {k: v for k, v in crash.items() if k not in _NOT_CONTENT}
    d["related_events"] = [
        {k: v for k, v in e.items() if k != "line"} if isinstance(e, dict) else e
        for e in crash.get("related_events") or []
    ]
    return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


_SIGNATURE = re.compile(r"kt\d+-[0-9a-f]{16}")


def crash_signature(crash: dict[str, Any]) -> str:
    """ktriage's stable bucket id; a crash without one (a hand-made report) gets one from kind and title."""
    b = crash.get("bucket")
    if isinstance(b, str) and _SIGNATURE.fullmatch(b):
        return b
    raw = f"{crash.get('kind')}\x00{crash.get('title')}".encode()
    return "kt0-" + hashlib.sha1(raw).hexdigest()[:16]


def crash_identity(crash: dict[str, Any], host: str | None) -> str:
    """One crash, however often, from whichever overlapping log or source (console log, vmcore, JSON report)
    it is submitted: host, kernel release, signature and the normalized content hash (registers, PIDs,
    KASLR addresses). Two boots that print one oops word for word (no KASLR) share it; the log timestamp
    kept beside it (`log_time`) tells them apart when both were read from logs."""
    release = (crash.get("kernel") or {}).get("release") or ""
    parts = [host or "", release, crash_signature(crash), content_hash(crash)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


_DMESG_STAMP = re.compile(r"\[\s*\d+\.\d+\]")  # [  292.763163]: seconds since boot, in every copy of the log
_WALL_STAMP = re.compile(
    r"^\w{3} [ \d]\d \d\d:\d\d:\d\d"  # syslog: Dec  5 12:34:56
    r"|^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?"  # ISO 8601 (journalctl -o short-iso, rsyslog)
)


def log_times(path: str, lines: set[int]) -> dict[int, str]:
    """The timestamp printed on each wanted line (1-based) of a text log, read the way ktriage reads it
    (decompressed; lines split on newlines). Lines without one are left out."""
    from ktriage.inputs import open_input

    out: dict[int, str] = {}
    if not lines:
        return out
    last = max(lines)
    inp, stream = open_input(path)
    try:
        if inp.kind != "log":
            return out
        for n, raw in enumerate(stream, 1):
            if n in lines:
                text = raw[:200].decode("utf-8", "replace")
                m = _DMESG_STAMP.search(text) or _WALL_STAMP.search(text)
                if m:
                    out[n] = m.group(0)
            if n >= last:
                break
    finally:
        if path != "-":
            stream.close()
    return out


@dataclass(frozen=True)
class KBFacts:
    known_bug: str | None = None
    fixed: bool | None = None  # this crash's kernel carries the fix
    fixed_in: str | None = None
    workaround: str | None = None
    fix_recorded: bool = False  # the rule names a fix (upstream commit/release or a distro build)


def _fixed_in(m: dict[str, Any], distro: str | None) -> str | None:
    fix = m.get("fix") or {}
    parts = []
    if fix.get("mainline"):
        parts.append(str(fix["mainline"]))
    if fix.get("stable"):
        parts.append("stable " + ", ".join(str(s) for s in fix["stable"]))
    for d in m.get("distros") or []:
        if d.get("fixed_in") and (distro is None or d.get("distro") == distro):
            parts.append(f"{d.get('distro')} {d['fixed_in']}")
    if not parts and fix.get("commit"):
        parts.append(f"commit {str(fix['commit'])[:12]}")
    return "; ".join(parts) or None


def kb_facts(crash: dict[str, Any]) -> KBFacts:
    """The best full known-bug match of the crash (similar ones are not matches)."""
    for m in crash.get("known_bugs") or []:
        if not isinstance(m, dict) or m.get("kind") != "match":
            continue
        answer = m.get("fixed_in_this_kernel")
        fixed = True if answer == "yes" else False if answer == "no" else None
        w = (m.get("workarounds") or [None])[0]
        workaround = None
        if isinstance(w, dict):
            workaround = str(w.get("how") or w.get("title") or "") or None
        fixed_in = _fixed_in(m, (crash.get("kernel") or {}).get("distro"))
        fix = m.get("fix") or {}
        recorded = bool(
            fix.get("commit") or fix.get("mainline") or any(d.get("fixed_in") for d in m.get("distros") or [])
        )
        return KBFacts(str(m.get("id")), fixed, fixed_in, workaround, recorded)
    return KBFacts()
