"""Progress of long work on stderr: multi-GB logs, directories of many files, vmcores loading debug info.

Shown only when stderr is a terminal (`for_stderr()` returns None otherwise, and the pipeline then
does nothing extra), so pipes, CI logs and `-o FILE` runs see no change. The bar for one file follows
the file's own offset in the kernel (`lseek(fd, 0, SEEK_CUR)` from a refresh thread), so the readers
(logs/scanner.py, compressed streams) need no hook: for a compressed input the offset is that of the
compressed bytes, which is what the file's size measures too.
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID

__all__ = ["Reporter", "RichReporter", "fd_of", "for_stderr"]


class Reporter(Protocol):
    """What the pipeline tells about its progress (ktriage.pipeline.Options.progress)."""

    def inputs(self, count: int) -> None: ...
    def reading(self, path: str, size: int | None) -> None: ...
    def step(self, text: str) -> None: ...
    def input_done(self) -> None: ...
    def close(self) -> None: ...


def fd_of(path: str) -> int | None:
    """The descriptor this process has open on `path` (Linux /proc), or None."""
    try:
        real = os.path.realpath(path)
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") == real:
                    return int(name)
            except OSError:
                continue
    except OSError:
        return None
    return None


class RichReporter:
    """rich progress bars on stderr: one for the inputs (when there are several), one for the current file."""

    MIN_BAR_BYTES = 32 << 20  # smaller files are read in well under a second: a bar would only flicker

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._files: TaskID | None = None
        self._file: TaskID | None = None
        self._fd: int | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._progress.start()

    def __enter__(self) -> RichReporter:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def inputs(self, count: int) -> None:
        if count > 1:
            self._files = self._progress.add_task(f"{count} inputs", total=count)

    def reading(self, path: str, size: int | None) -> None:
        self._end_file()
        name = os.path.basename(path) or path
        big = size is not None and size >= self.MIN_BAR_BYTES
        self._file = self._progress.add_task(f"reading {name}", total=size if big else None)
        self._fd = fd_of(path) if big else None
        if self._fd is not None:
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll, name="ktriage-progress", daemon=True)
            self._poller.start()
        self._progress.refresh()

    def step(self, text: str) -> None:
        if self._file is not None:
            self._progress.update(self._file, description=text)
            self._progress.refresh()

    def input_done(self) -> None:
        self._end_file()
        if self._files is not None:
            self._progress.advance(self._files)

    def close(self) -> None:
        self._end_file()
        self._progress.stop()

    def _poll(self) -> None:
        fd, task = self._fd, self._file
        while fd is not None and task is not None and not self._stop.wait(0.1):
            try:
                self._progress.update(task, completed=os.lseek(fd, 0, os.SEEK_CUR))
            except OSError:  # closed under us: the file is done
                return

    def _end_file(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if self._file is not None:
            self._progress.remove_task(self._file)
            self._file = None
        self._fd = None


def for_stderr(force: bool | None = None) -> RichReporter | None:
    """A reporter when stderr is a terminal (or `force`), else None: nothing is added to redirected output."""
    if force is False or (force is None and not sys.stderr.isatty()):
        return None
    return RichReporter()
