#!/usr/bin/env python3
"""ktriage on inputs at scale (issue 19): time, peak memory, and the ratio to `grep -c -E` (the oops
keywords) on the same file.

Cases (sizes at --size 1; --size 0.05 runs them at 5%):
  syslog       a 2 GB syslog of ordinary lines with 5 real oopses spliced in (the lab's null-member oops)
  oopses       a log of 100,000 oopses back to back (crashes past --max-crashes are counted by title)
  no-newline   a 1 GB file with no newline at all (cut to 64 KiB lines with a note)
  code-line    one oops whose `Code:` line holds 10,000 bytes (a real one holds 64)

Each case is run at `size` and at `2 x size` (--no-double skips that) to show the time is linear: the
`x2` column is time(2 x size) / time(size), 2.0 for a linear case. Peak RSS is the child's ru_maxrss.

    python3 bench/scale_bench.py --size 0.05          # ~100 MB syslog, 5,000 oopses, 50 MB line
    python3 bench/scale_bench.py --case syslog --size 1 --no-analysis

The file is in the page cache when both tools read it, where grep reads at memory speed (on this machine's
disk a cold read was as fast: 1 GB with `grep -c` 0.52 s cold, 0.44 s warm).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "tests" / "fixtures" / "lab" / "null-member.console.log"
CHILD_ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
# what a person looking for crashes would grep for (the reference the issue measured against)
GREP = "BUG|WARNING|Oops|Kernel panic|general protection|Unable to handle|Call Trace"


def _oops() -> bytes:
    lines = BASE.read_bytes().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if b"BUG: kernel NULL" in line)
    return b"".join(lines[start : start + 40])


def make_syslog(path: Path, size: int) -> None:
    """Ordinary syslog lines (varied, as a real /var/log/messages) with 5 oopses spliced in at even places."""
    # closed by the end-of-trace line a kernel that survives the oops prints (without it, the report stays open
    # while other programs' lines go by, and every line is parsed: ~5 MB/s instead of disk speed)
    oops = b"".join(b"Dec  5 10:00:00 host kernel: " + line[15:] for line in _oops().splitlines(keepends=True))
    oops += b"Dec  5 10:00:00 host kernel: ---[ end trace 0000000000000000 ]---\n"
    block = b"".join(
        b"Dec  5 10:%02d:%02d host systemd[1]: Started session %d of user u%d (pid %d).\n"
        % (i // 60 % 60, i % 60, i, i % 97, 1000 + i)
        for i in range(20000)
    )
    with open(path, "wb") as f:
        written, next_oops, every = 0, size // 6, size // 6
        while written < size:
            f.write(block)
            written += len(block)
            if written >= next_oops:
                f.write(oops)
                next_oops += every


def make_oopses(path: Path, n: int) -> None:
    oops = _oops()
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(oops)


def make_no_newline(path: Path, size: int) -> None:
    piece = b"[    1.000000] " + b"x" * ((1 << 20) - 15)
    with open(path, "wb") as f:
        for _ in range(max(1, size >> 20)):
            f.write(piece)


def make_code_line(path: Path, n: int) -> None:
    lines = BASE.read_text().splitlines()
    real = "cc cc cc cc cc 48 8b 87 f0 00 00 00 <48> 8b 80 30 0a 00 00 c3 90 c3 66 66 2e 0f 1f 84 00 00 00".split()
    code = "Code: " + " ".join(["90"] * (n - len(real)) + real)
    lines = [line[:15] + code if line[15:].startswith("Code: cc") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")


def run(cmd: list[str], timeout: float = 0, read_output: bool = False) -> tuple[float, int, int, float]:
    """(seconds, peak RSS in MB, exit status, CPU seconds); a run past `timeout` seconds is killed (exit -9).
    CPU seconds (user + system) tell the work done when other jobs share the cores and stretch the wall time.
    `read_output`: stdout goes to a pipe that is read, not to /dev/null: GNU grep, seeing its output is
    /dev/null, stops at the first match (`grep -c` then reads a sixth of the syslog case, not all of it)."""
    t0 = time.perf_counter()
    out = subprocess.PIPE if read_output else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=CHILD_ENV)
    if read_output and p.stdout is not None:
        p.stdout.read()
    if timeout:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    return wall, ru.ru_maxrss // 1024, os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime


CASES = {
    "syslog": lambda p, s: make_syslog(p, int(2e9 * s)),
    "oopses": lambda p, s: make_oopses(p, max(1, int(100_000 * s))),
    "no-newline": lambda p, s: make_no_newline(p, int(1e9 * s)),
    "code-line": lambda p, s: make_code_line(p, 10_000),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=float, default=1.0, help="fraction of the full sizes (default 1)")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="case(s) to run; default all")
    ap.add_argument("--no-analysis", action="store_true", help="pass --no-analysis to ktriage")
    ap.add_argument("--no-double", action="store_true", help="skip the 2 x size run (linearity check)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a ktriage run is killed (exit -9)")
    args = ap.parse_args()
    extra = ["--no-analysis"] if args.no_analysis else []
    print(
        f"{'case':11} {'size':>9} {'ktriage':>9} {'cpu':>8} {'RSS':>7} {'exit':>4} {'grep -c':>8} {'grep cpu':>8} "
        f"{'ratio':>6} {'x2':>5}"
    )
    with tempfile.TemporaryDirectory(prefix="ktriage-scale-") as tmp:
        for name in args.case or list(CASES):
            times = []
            for factor in (1, 2) if not args.no_double and name != "code-line" else (1,):
                path = Path(tmp) / f"{name}.log"
                CASES[name](path, args.size * factor)
                size = path.stat().st_size
                t, rss, code, cpu = run(
                    [sys.executable, "-m", "ktriage.cli", "analyze", "-o", os.devnull, *extra, str(path)]
                )
                g, _, _, gcpu = run(["grep", "-c", "-E", GREP, str(path)], read_output=True)
                times.append(t)
                x2 = f"{times[1] / times[0]:5.2f}" if len(times) == 2 else ""
                print(
                    f"{name:11} {size / 1e6:8.1f}M {t:8.2f}s {cpu:7.2f}s {rss:5d}MB {code:4d} {g:7.2f}s {gcpu:7.2f}s "
                    f"{t / g:6.1f} {x2:>5}",
                    flush=True,
                )
                path.unlink()


if __name__ == "__main__":
    main()
