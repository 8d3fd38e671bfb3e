"""Leave a one-shot `ktriage analyze` process without the interpreter's teardown.

Why: once the report is written, nothing the process holds matters any more, but a normal exit makes Python
collect every object at finalization, and a vmcore run holds drgn programs with the DWARF index of a vmlinux
(a 633 MB distribution -dbg vmlinux: ~250 MB of index, freed piece by piece) and hundreds of thousands of
small objects. Measured on Debian's stock 6.1 kernel (bench/vmcore_bench.py --target stock): that teardown
was 10-15 % of the whole run. The kernel frees the address space at once instead.

Only the real command does this (`run()` in ktriage.cli sets `standalone`): in-process callers (tests with
click's CliRunner, other Python code calling `main`) keep a normal `SystemExit`.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

standalone = False  # set by ktriage.cli.run(), the console-script / `python -m ktriage.cli` entry point


def leave(code: int) -> NoReturn:
    """Exit with `code`: fast in the real command (atexit handlers run, streams flushed, no finalization)."""
    if not standalone:
        sys.exit(code)
    try:
        atexit._run_exitfuncs()  # temporary files (a reassembled flattened dump) are still removed
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said
                pass
        os._exit(code)
