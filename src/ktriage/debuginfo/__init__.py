"""Debug info for a crash read from a log: find, verify, load (drgn), symbolize.

`find_debuginfo(crash, opts)` always returns a `DebugInfo` session (never None) so the analyzer can
say where it looked when nothing usable was found: `session.ok` tells whether drgn has files loaded,
`session.search` lists the files tried, refused (one line each) and used. Sessions are cached per set
of verified files, so a log with many crashes of one kernel loads the DWARF once.
"""

from __future__ import annotations

from typing import Any

from ktriage.debuginfo.find import Search, search
from ktriage.debuginfo.session import DebugInfo, SrcLoc

__all__ = ["DebugInfo", "Search", "SrcLoc", "find_debuginfo", "search"]

_SESSIONS: dict[tuple, DebugInfo] = {}
_MAX_SESSIONS = 4


def find_debuginfo(crash: Any, opts: Any = None) -> DebugInfo:
    vmlinux = getattr(opts, "vmlinux", None)
    dirs = list(getattr(opts, "debuginfo_dirs", None) or [])
    src = list(getattr(opts, "src_dirs", None) or [])
    s = search(crash, vmlinux, dirs)
    key = (s.vmlinux, tuple(sorted(s.modules.items())), tuple(src), s.release)
    base = _SESSIONS.get(key)
    if base is None:
        base = DebugInfo(s, src)
        if len(_SESSIONS) >= _MAX_SESSIONS:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        _SESSIONS[key] = base
    if base.search is s:
        return base
    # same files, another crash: share drgn's program, keep this crash's search record
    view = DebugInfo.__new__(DebugInfo)
    view.__dict__.update(base.__dict__)
    view.search = s
    return view
