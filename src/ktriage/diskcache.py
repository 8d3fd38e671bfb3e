"""A per-user cache of data ktriage derives from its own files (the validated knowledge base), like .pyc.

Why: parsing and validating the ~40 packaged rule files costs ~60 ms at every run, more than reading
the whole kernel log of a vmcore; unpickling the result costs ~2 ms. An entry is named by a hash of
everything it was built from (ktriage's version, Python's, each source file's size and mtime), so a
changed file is simply a miss and a rebuild. Nothing here is ever needed: an unreadable, corrupt or
unwritable cache only costs the rebuild.

Location: $KTRIAGE_CACHE_DIR, else $XDG_CACHE_HOME/ktriage, else ~/.cache/ktriage (mode 0700: a
pickle is only loaded from a directory only its user can write). KTRIAGE_CACHE_DIR=off disables it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 16  # per kind: old entries (another version, edited rules) are pruned beyond this


def cache_dir() -> Path | None:
    env = os.environ.get("KTRIAGE_CACHE_DIR")
    if env:
        return None if env.lower() in ("off", "0", "no", "none") else Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ktriage"


def key_of(*parts: Any) -> str:
    """The entry name for what the data was built from (reprs of plain values)."""
    from ktriage import __version__

    h = hashlib.sha256(repr((__version__, sys.version_info[:2], parts)).encode())
    return h.hexdigest()[:32]


def _private(d: Path) -> bool:
    """The directory exists, is ours and nobody else can write to it."""
    try:
        st = d.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def cached(kind: str, key: str, build: Callable[[], T]) -> T:
    """`build()`'s result, from the cache when an entry for `key` exists, else built and stored."""
    d = cache_dir()
    if d is None:
        return build()
    path = d / f"{kind}-{key}.pickle"
    if _private(d):
        try:
            with open(path, "rb") as f:
                return pickle.load(f)  # noqa: S301 - our own file in a private directory
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - corrupt or from an incompatible build: rebuild it
            pass
    value = build()
    _store(d, kind, path, value)
    return value


def _store(d: Path, kind: str, path: Path, value: Any) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(d):
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{kind}-", suffix=".tmp", dir=d)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)  # readers see the old entry or the whole new one, never a part
        except BaseException:
            os.unlink(tmp)
            raise
        old = sorted(d.glob(f"{kind}-*.pickle"), key=lambda p: p.stat().st_mtime)
        for p in old[:-MAX_ENTRIES]:
            p.unlink()
    except Exception:  # noqa: BLE001 - read-only home, full disk, unpicklable value: no cache, same result
        pass
