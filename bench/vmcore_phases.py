#!/usr/bin/env python3
"""Where one vmcore report spends its time and memory: `ktriage analyze VMCORE --format json` run in this
process with each phase timed (wall seconds) and the process's RSS after it.

    PYTHONPATH=src python3 bench/vmcore_phases.py VMCORE [--vmlinux V] [--debuginfo DIR]... [--no-prefetch]

Phases: the dump opened (drgn set_core_dump, a flattened file reassembled), debug info loaded (drgn's DWARF
index of the vmlinux and modules), the kernel log, `sys` facts, the crashed thread's unwinding, each analyzer,
the knowledge base, the JSON rendering, and the session closed (drgn frees its index). The command's child for
the dump overlaps the open + load with its imports on a worker thread (ktriage.vmcore.open_early), as this does
by default; --no-prefetch runs everything in sequence so that each phase is measured alone (the sum is then
larger than the command's wall time).
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

ROWS: list[tuple[str, float, float, int]] = []
GC = {"runs": 0, "seconds": 0.0, "start": 0.0}


def _gc_timer(phase: str, info: dict) -> None:
    """Time spent in Python's cyclic garbage collector (every generation)."""
    if phase == "start":
        GC["start"] = time.perf_counter()
    else:
        GC["runs"] += 1
        GC["seconds"] += time.perf_counter() - GC["start"]


def cpu_s() -> float:
    """User + system CPU of the whole process (all threads: drgn indexes DWARF on several)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        t0, c0 = time.perf_counter(), cpu_s()
        try:
            return fn(*a, **k)
        finally:
            ROWS.append((name, time.perf_counter() - t0, cpu_s() - c0, rss_mb()))

    return wrapper


DWARF_NAMES: list[str] = []


def _keep_dwarf_names(close: Callable[..., Any]) -> Callable[..., Any]:
    """The names BTF did not answer, kept before the session goes (each one made drgn index the DWARF)."""

    def wrapper(s: Any) -> Any:
        if s.dwarf_gate is not None:
            DWARF_NAMES[:] = s.dwarf_gate.passed
        return close(s)

    return wrapper


def instrument() -> None:
    import ktriage.analyzers as an
    import ktriage.kb as kb
    import ktriage.pipeline as pl
    import ktriage.vmcore as vm

    vm.open_program = timed("open dump (set_core_dump)", vm.open_program)
    vm.load_debug_info = timed("load debug info", vm.load_debug_info)
    vm._read_dmesg = timed("kernel log", vm._read_dmesg)
    vm._system = timed("sys facts", vm._system)
    vm.VmcoreSession.close = timed("session close (drgn frees)", _keep_dwarf_names(vm.VmcoreSession.close))
    an.load_all()
    for name, a in list(an._REGISTRY.items()):
        an._REGISTRY[name] = an.Analyzer(a.name, timed(f"analyzer {a.name}", a.fn), a.order, a.needs)
    pl.match_crash = kb.match_crash = timed("knowledge base", kb.match_crash)  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vmcore")
    ap.add_argument("--vmlinux")
    ap.add_argument("--debuginfo", action="append", default=[])
    ap.add_argument("--no-prefetch", action="store_true")
    a = ap.parse_args()
    import gc

    gc.callbacks.append(_gc_timer)
    t0, c0 = time.perf_counter(), cpu_s()
    from ktriage.pipeline import Options, analyze_paths, warm

    # in this process, not in the forked child the command reads a dump in (its phases would be invisible here)
    opts = Options(vmlinux=a.vmlinux, debuginfo_dirs=a.debuginfo, isolate_dumps=False)
    if not a.no_prefetch:
        from ktriage.vmcore import open_early

        instrument()
        open_early(a.vmcore, opts)  # what the command's child for the dump does (ktriage.pipeline)
        timed("imports + kb (overlapped)", warm)(opts, "json")
    else:
        instrument()
        timed("imports + kb", warm)(opts, "json")
    report = timed("analyze (all of it)", analyze_paths)([a.vmcore], opts)
    from ktriage.render.json_out import render

    text = timed("render json", render)(report)
    total = time.perf_counter() - t0
    for name, dt, cpu, rss in ROWS:
        print(f"{name:<34} {dt:7.3f} s wall {cpu:7.3f} s CPU   RSS after {rss:5d} MB")
    print(f"{'(of which Python GC)':<34} {GC['seconds']:7.3f} s wall in {GC['runs']} collections")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"{'total (in process)':<34} {total:7.3f} s wall {cpu_s() - c0:7.3f} s CPU   peak RSS {peak} MB; report {len(text)} bytes"
    )
    if DWARF_NAMES:
        print(f"names looked up in DWARF (BTF had none; the first one built drgn's index): {', '.join(DWARF_NAMES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
