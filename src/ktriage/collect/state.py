"""What the collector has handled, kept across boots, and how a dump is recognised again.

A dump is the same dump when its path, size, mtime and the hash of its first MiB agree: cheap on a
multi-GB vmcore, and a dump rewritten in place (a new crash in a reused directory) changes at least one.
The file is rewritten whole through a temporary file, fsync and rename, so a power cut leaves the old
state or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from typing import Any

__all__ = ["HEAD_BYTES", "State", "StateError", "atomic_write", "file_key"]

HEAD_BYTES = 1 << 20
VERSION = 1


class StateError(Exception):
    """The state or spool could not be written (full disk, read-only file system): one line for the user."""


def file_key(path: str) -> str:
    """`path|size|mtime_ns|sha256(first MiB)`: what makes a file the same file again."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(HEAD_BYTES))
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{h.hexdigest()[:32]}"


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write through a temporary file in the same directory, fsync, rename, fsync the directory."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    except OSError as e:
        raise StateError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateError(f"{path}: cannot write: {e.strerror}") from None


class State:
    """`{"version": 1, "handled": {key: {"what", "result", "at", ...}}}` in one JSON file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handled: dict[str, dict[str, Any]] = {}
        self.note: str | None = None
        try:
            with open(path, "rb") as f:
                data = json.load(f)
            self.handled = dict(data.get("handled", {}))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as e:
            # a damaged state file must not stop collection: start afresh (the server deduplicates too)
            self.note = f"{path}: unreadable state ({e}); starting with an empty one"

    def __contains__(self, key: str) -> bool:
        return key in self.handled

    def mark(self, key: str, what: str, result: str, **extra: Any) -> None:
        self.handled[key] = {"what": what, "result": result, "at": int(time.time()), **extra}
        self.save()

    def save(self) -> None:
        body = json.dumps({"version": VERSION, "handled": self.handled}, indent=1, sort_keys=True)
        atomic_write(self.path, body.encode() + b"\n")
