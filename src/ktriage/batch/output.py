"""The results file: one JSON line per task, appended and flushed as each task ends, so an interrupted run
loses nothing it finished and a rerun knows what to skip."""

from __future__ import annotations

import json
import os
from typing import Any, TextIO

__all__ = ["ResultsFile", "done_paths"]


def done_paths(path: str | None) -> set[str]:
    """Tasks an earlier run already wrote (any status): a rerun skips them. A torn last line is ignored."""
    if not path or not os.path.exists(path):
        return set()
    done = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                d = json.loads(line)
                done.add(d["batch"]["path"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


class ResultsFile:
    def __init__(self, path: str | None, stdout: TextIO) -> None:
        self.path = path
        self._f: TextIO = open(path, "a", encoding="utf-8") if path else stdout  # noqa: SIM115 - closed in close()
        if path and self._f.tell() > 0:
            self._terminate_torn_line(path)

    def _terminate_torn_line(self, path: str) -> None:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                self._f.write("\n")

    def write(self, line: dict[str, Any]) -> None:
        self._f.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self.path:
            self._f.close()
