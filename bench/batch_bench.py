#!/usr/bin/env python3
"""Many vmcores, one report each: `ktriage batch` with the local engine (1 and 2 workers) and Dask (2 workers,
a LocalCluster), next to `crash` run on each dump in sequence (`sys; mod -s crashmod KO; bt; log; dis -l RIP`,
the commands bench/vmcore_bench.py times for one dump).

The lab's kdump vmcores are repeated (symlinks) to reach --tasks tasks. Every engine gets the same vmlinux and
module debug info crash gets. Prints tasks per minute, the speed-up over crash in sequence, and the peak
memory of one worker (ktriage: the largest task child's ru_maxrss; crash: the largest crash process).

    python3 bench/batch_bench.py                 # 50 tasks
    python3 bench/batch_bench.py --tasks 100 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vmcore_bench import CHILD_ENV, crash_cmds, rip_of, run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def lab_vmcores() -> tuple[dict, list[tuple[str, str]]]:
    cache = Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")
    manifest = cache / "lab.json"
    if not manifest.exists():
        sys.exit(f"{manifest} missing: build the lab first (python3 lab/lab.py all)")
    lab = json.loads(manifest.read_text())
    cores = [(n, s["vmcore"]) for n, s in sorted(lab["scenarios"].items()) if s.get("ok") and s.get("vmcore")]
    if not cores:
        sys.exit("the lab holds no vmcore yet")
    return lab, cores


def batch(inputs: Path, out: Path, lab: dict, *extra: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "ktriage.cli",
        "batch",
        str(inputs),
        "--out",
        str(out),
        "--vmlinux",
        lab["vmlinux"],
        "--debuginfo",
        str(Path(lab["crashmod_ko"]).parent),
        *extra,
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env={**CHILD_ENV, "PYTHONPATH": str(REPO / "src")})
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"ktriage batch {' '.join(extra)} failed ({r.returncode}): {r.stderr[-1000:]}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not shutil.which("crash"):
        sys.exit("crash is not installed: apt-get install crash")
    lab, cores = lab_vmcores()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ktriage-batch-bench-") as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        tasks = []
        for i in range(a.tasks):
            name, core = cores[i % len(cores)]
            link = inputs / f"{i:03d}-{name}.vmcore"
            link.symlink_to(core)
            tasks.append((name, core))
        engines = [("local, 1 worker", ["--workers", "1"]), ("local, 2 workers", ["--workers", "2"])]
        if not a.no_dask:
            engines.append(("dask, 2 workers", ["--engine", "dask", "--workers", "2"]))
        rips = {}
        for label, extra in engines:
            out = Path(tmp) / f"{len(rows)}.jsonl"
            dt = batch(inputs, out, lab, *extra)
            lines = [json.loads(x) for x in out.read_text().splitlines()]
            assert len(lines) == a.tasks and all(x["batch"]["status"] == "ok" for x in lines), "a task failed"
            for x in lines:
                rips.setdefault(Path(x["batch"]["path"]).name.split("-", 1)[1][: -len(".vmcore")], rip_of(x))
            rows.append(
                {
                    "engine": label,
                    "seconds": round(dt, 1),
                    "tasks_per_min": round(a.tasks / dt * 60, 1),
                    "peak_mb": round(max(x["batch"]["max_rss_mb"] for x in lines)),
                }
            )
        ko = lab["crashmod_ko"]
        t0 = time.perf_counter()
        peak = 0
        for name, core in tasks:
            _, rss, rc, _ = run(["crash", "-s", lab["vmlinux"], core], crash_cmds(ko, Path(ko).stem, rips.get(name)))
            peak = max(peak, rss)
        dt = time.perf_counter() - t0
        rows.append(
            {
                "engine": "crash, in sequence",
                "seconds": round(dt, 1),
                "tasks_per_min": round(a.tasks / dt * 60, 1),
                "peak_mb": round(peak / 1024),
            }
        )
    base = rows[-1]["tasks_per_min"]
    for r in rows:
        r["speedup_vs_crash"] = round(r["tasks_per_min"] / base, 1)
    if a.json:
        print(json.dumps({"tasks": a.tasks, "vmcores": len(cores), "cpus": os.cpu_count(), "rows": rows}, indent=1))
        return 0
    print(f"{a.tasks} tasks over {len(cores)} lab vmcores (with vmlinux + crashmod.ko DWARF), {os.cpu_count()} CPUs")
    print("| engine | wall s | tasks/min | vs crash | peak MB per worker |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['seconds']} | {r['tasks_per_min']} | x{r['speedup_vs_crash']} | {r['peak_mb']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
