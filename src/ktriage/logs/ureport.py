"""ABRT uReports (microreports, `abrt-cli`/`reporter-ureport`, FAF's input): refused with a reason.

A uReport is a JSON object with a numeric `ureport_version` (FAF wiki, "uReport"). For a kernel oops it carries
satyr's parsed frames and metadata, not the kernel's own text, so the log reader has nothing to read in it and
must not try: a JSON object read as a log would only give false matches. The user gets one line saying what the
file is and what to give instead.
"""

from __future__ import annotations

import json

__all__ = ["ureport_refusal"]


def ureport_refusal(data: bytes, path: str) -> str:
    """The one-line reason a uReport is not analyzed, naming its version and problem type when readable."""
    what = "an ABRT uReport"
    try:
        obj = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        problem = obj.get("problem")
        ptype = problem.get("type") if isinstance(problem, dict) else None
        what = f"an ABRT uReport (version {obj.get('ureport_version')}, problem type {ptype or 'unknown'})"
    return (
        f"{path}: {what}: a parsed problem summary without the kernel's own text; "
        f"give the kernel log (journal, /var/log/messages, vmcore-dmesg.txt) or the vmcore it was made from"
    )
