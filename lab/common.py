"""The scenario bookkeeping the lab's targets share: lab.py (the small kernel, x86_64 and arm64), stock.py (Debian
12's kernel) and old510.py (Debian 11's 5.10).

A scenario's run is kept under its target's runs directory as <name>/meta.json (+ console.log, vmcore...); it is
redone when its spec hash changes; the manifest (lab.json, stock.json, old510.json) lists every run with its files.
These keys and manifests are the cache's names for an hour of builds and runs: they must stay what the targets
computed before they shared this module, byte for byte (tests/lab/test_lab_keys.py compares them with the cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable

CACHE = os.environ.get("KTRIAGE_LAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ktriage-lab")


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def spec_hash(boot_args: str, qemu: list[str], spec: dict) -> str:
    """A scenario's key: its run is redone when the kernel command line, QEMU's or the scenario's entry changes."""
    return hashlib.sha256(json.dumps([boot_args, qemu, spec], sort_keys=True).encode()).hexdigest()[:12]


def read_meta(runs: str, name: str) -> dict | None:
    """The meta.json of scenario `name`'s last run under `runs`, or None if it never ran there."""
    p = os.path.join(runs, name, "meta.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return dict(json.load(f))


def run_done(runs: str, name: str, spec: str) -> bool:
    """The last run was good and of the scenario as it is now specified."""
    m = read_meta(runs, name)
    return bool(m and m.get("ok") and m.get("spec") == spec)


def run_all(
    names: Iterable[str], cached: Callable[[str], bool], run: Callable[[str], dict], who: str = ""
) -> list[str]:
    """Run each scenario that is not `cached`, a second time if the first run failed (TCG timing makes a few
    flaky); the names that failed twice. `who` prefixes the log lines ("arm64 ")."""
    failed = []
    for n in names:
        if cached(n):
            log(f"{who}{n}: cached")
            continue
        if not run(n)["ok"]:
            log(f"{who}{n}: retrying once")
            if not run(n)["ok"]:
                failed.append(n)
    return failed


def manifest_scenarios(runs: str, names: Iterable[str], vmcore: bool = True, qemu_elf: bool = False) -> dict:
    """name -> its meta.json plus the paths of its run directory, console log and, where the target takes them,
    vmcore and QEMU ELF dump (None when the run has none); scenarios that never ran are left out."""
    scen = {}
    for name in names:
        meta = read_meta(runs, name)
        if meta is None:
            continue
        d = os.path.join(runs, name)
        paths: dict = {"dir": d, "console_log": os.path.join(d, "console.log")}
        if vmcore:
            paths["vmcore"] = os.path.join(d, "vmcore") if meta.get("vmcore") else None
        if qemu_elf:
            paths["qemu_elf"] = os.path.join(d, meta["qemu_elf"]) if meta.get("qemu_elf") else None
        scen[name] = dict(meta, **paths)
    return scen


def write_json(path: str, data: dict) -> str:
    """Replace the manifest at `path` in one rename: a test reading it never sees half of it."""
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)
    return path
