"""Run one task contained, with its limits, retried once; always return one report line, never raise.

The same function runs under both engines (in a pool thread here, or inside a Dask worker), so a task
gives the same line wherever it ran. A failed line is still a valid `ktriage.report/1` document: its one
input says why (`status: error`), and `batch.status` is "failed".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from ktriage.batch.child import MEMORY_EXIT

__all__ = ["Limits", "failed_line", "run_contained"]

ATTEMPTS = 2  # a failure is retried once
# how a Python child under RLIMIT_AS fails when the limit is hit outside the analysis itself (imports)
MEMORY_SIGNS = ("MemoryError", "failed to map segment", "Cannot allocate memory")


@dataclass(frozen=True)
class Limits:
    timeout: float | None = None  # seconds per attempt
    memory_mb: int | None = None  # address-space limit of the child
    vmlinux: str | None = None
    debuginfo_dirs: tuple[str, ...] = ()
    btf: bool = True


def failed_line(path: str, reason: str, attempts: int) -> dict[str, Any]:
    return {
        "schema": "ktriage.report/1",
        "inputs": [{"path": path, "format": None, "status": "error", "error": reason, "crashes": 0, "notes": []}],
        "crashes": [],
        "notes": [],
        "batch": {"path": path, "status": "failed", "reason": reason, "attempts": attempts},
    }


def _env() -> dict[str, str]:
    """The child imports the same ktriage as this process (an editable checkout or PYTHONPATH included)."""
    import ktriage

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(ktriage.__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _attempt(path: str, limits: Limits) -> tuple[dict[str, Any] | None, str]:
    task = {
        "path": path,
        "memory_mb": limits.memory_mb,
        "options": {"vmlinux": limits.vmlinux, "debuginfo_dirs": list(limits.debuginfo_dirs), "btf": limits.btf},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ktriage.batch.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        start_new_session=True,  # a timeout kills the child's whole group (makedumpfile -R included)
    )
    try:
        out, err = proc.communicate(json.dumps(task).encode(), timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, f"timed out after {limits.timeout:g} s"
    if proc.returncode == MEMORY_EXIT:
        return None, f"over the memory limit ({limits.memory_mb} MB)"
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        return None, f"killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        if any(m in x for x in lines[-3:] for m in MEMORY_SIGNS):
            return None, f"over the memory limit ({limits.memory_mb} MB)"
        return None, f"exited with status {proc.returncode}: {lines[-1] if lines else 'no message'}"[:300]
    try:
        return json.loads(out), ""
    except ValueError:
        return None, "the task's output was not JSON"


def run_contained(path: str, limits: Limits) -> dict[str, Any]:
    """One report line for `path`: the child's report with a `batch` block, or a failed line."""
    reason = ""
    t0 = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        res, reason = _attempt(path, limits)
        if res is not None:
            line: dict[str, Any] = res["report"]
            line["batch"] = {
                "path": path,
                "status": "ok",
                "attempts": attempt,
                "seconds": res["seconds"],
                "max_rss_mb": res["max_rss_mb"],
            }
            return line
    line = failed_line(path, reason, ATTEMPTS)
    line["batch"]["seconds"] = round(time.monotonic() - t0, 3)
    return line
