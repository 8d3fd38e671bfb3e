#!/usr/bin/env python3
"""What the generated CVE tier costs `ktriage analyze` of a log: wall time and peak memory, with the tier
(default) and without it (KTRIAGE_CVE_KB=off), each run in a fresh process as a user would run it.

Budget (issue 17): at most +100 ms and +50 MB. The first run after an install or `kb update` also builds the
tier's SQLite index in the per-user cache; that one-off cost is printed apart ("cold").

    PYTHONPATH=src python bench/kb_bench.py [LOG ...] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
DEFAULT_LOGS = [
    HERE.parent / "shared" / "seeds" / "000_3ac917ef54f6f6d4.txt",  # a hand-rule match (CentOS 7 conntrack)
    HERE.parent / "shared" / "corpora" / "syzkaller" / "5",  # a CVE candidate (syzkaller KASAN report)
]


def run(log: str, env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of one `ktriage analyze LOG --format json` in a fresh process.

    CPU time (user + system) rather than wall time: on a shared machine the wall clock mostly measures the
    other jobs' load, CPU time what the run itself costs."""
    cmd = [sys.executable, "-m", "ktriage.cli", "analyze", log, "--format", "json"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    dt = ru.ru_utime + ru.ru_stime
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"analyze {log} failed")
    return dt, ru.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("logs", nargs="*", default=[str(p) for p in DEFAULT_LOGS if p.exists()])
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="ktriage-kb-bench-")
    base = {**os.environ, "KTRIAGE_CACHE_DIR": cache}
    off = {**base, "KTRIAGE_CVE_KB": "off"}
    worst_dt = worst_mb = 0.0
    for log in a.logs:
        cold, _ = run(log, base)  # builds the rules cache and the CVE index
        run(log, off)
        with_t, with_m, off_t, off_m = [], [], [], []
        for _ in range(a.runs):  # interleaved, so machine load hits both alike
            dt, mb = run(log, base)
            with_t.append(dt)
            with_m.append(mb)
            dt, mb = run(log, off)
            off_t.append(dt)
            off_m.append(mb)
        dt = statistics.median(with_t) - statistics.median(off_t)
        dm = max(with_m) - max(off_m)
        worst_dt, worst_mb = max(worst_dt, dt), max(worst_mb, dm)
        print(
            f"{Path(log).name}: without the CVE tier {statistics.median(off_t) * 1000:.0f} ms CPU, {max(off_m):.0f} MB; "
            f"with it {statistics.median(with_t) * 1000:.0f} ms CPU, {max(with_m):.0f} MB "
            f"({dt * 1000:+.0f} ms, {dm:+.1f} MB; median of {a.runs}); cold first run {cold * 1000:.0f} ms CPU"
        )
    ok = worst_dt <= 0.100 and worst_mb <= 50
    print(
        f"budget +100 ms / +50 MB: {'met' if ok else 'NOT met'} (worst +{worst_dt * 1000:.0f} ms, +{worst_mb:.1f} MB)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
