"""Debug info load + symbolization of a ~30-frame trace: ktriage (drgn, no vmcore) vs `crash`.

    python3 bench/debuginfo_bench.py [--frames 30] [--repeat 3]

Needs the crash lab (lab.json) and the `crash` utility (Debian package `crash`).

What is compared, on the same lab vmlinux + crashmod.ko:
  ktriage  find + verify the debug files (banner, function sizes), load them in drgn, every frame to
           file:line with its inline chain, and the faulting function disassembled with source lines
           (`src.frames` + `src.disassembly` work), each repeat in a fresh process (imports and log parsing not timed); and the
           whole `ktriage analyze` CLI on the null-member log as a separate process (Python start-up,
           log parsing and every analyzer included).
  crash    `crash -s vmlinux vmcore` (crash cannot run without a dump or a live kernel: its load of the
           null-member vmcore is included, nothing subtracted) running `mod -s crashmod crashmod.ko`, then
           for each frame `sym <func>` and `dis -l <func>+<off> 1` (file:line of the frame; crash shows no
           inline chain), then `dis -l <faulting function>`.
Prints the times and the ratio crash / ktriage in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def lab() -> dict:
    cache = Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")
    m = cache / "lab.json"
    if not m.exists():
        sys.exit(f"{m} missing: build the lab with `python3 lab/lab.py all`")
    return json.loads(m.read_text())


def trace(lb: dict, n: int):
    """A crash whose IP is null-member's and whose frames are n distinct real frames from the lab logs."""
    from ktriage.pipeline import Options, analyze_paths

    first = None
    frames, seen = [], set()
    order = ["null-member"] + [s for s in lb["scenarios"] if s != "null-member"]
    for name in order:
        s = lb["scenarios"][name]
        if not s.get("ok"):
            continue
        for cr in analyze_paths([s["console_log"]], Options(analyze=False)).crashes:
            c = cr.crash
            first = first or c
            for f in c.frames:
                k = (f.symbol, f.offset, f.module)
                if f.symbol and f.offset is not None and k not in seen:
                    seen.add(k)
                    frames.append(f)
    return first.replace(frames=tuple(frames[:n]))


def run_ktriage(lb: dict, crash) -> tuple[float, int, int]:
    import ktriage.debuginfo as D
    from ktriage.analyzers import AnalysisContext
    from ktriage.analyzers.debuginfo_src import _disassembly, symbolize
    from ktriage.pipeline import Options

    D._SESSIONS.clear()
    opts = Options(vmlinux=lb["vmlinux"], debuginfo_dirs=[str(Path(lb["crashmod_ko"]).parent)])
    t = time.perf_counter()
    di = D.find_debuginfo(crash, opts)
    frames = symbolize(crash, di)
    dis = _disassembly(AnalysisContext(crash, debuginfo=di), di, frames)
    dt = time.perf_counter() - t
    ok = sum(1 for f in frames if f["locations"])
    return dt, ok, len(dis[0].listing) if dis else 0


def run_crash(lb: dict, crash, vmcore: str) -> tuple[float, int]:
    cmds = [f"mod -s crashmod {lb['crashmod_ko']}"]
    for f in crash.frames:
        cmds.append(f"sym {f.symbol}")
        cmds.append(f"dis -l {f.symbol}+{f.offset} 1")
    cmds += [f"dis -l {crash.ip.symbol}", "q"]
    with tempfile.NamedTemporaryFile("w", suffix=".crash", delete=False) as fh:
        fh.write("\n".join(cmds) + "\n")
    t = time.perf_counter()
    p = subprocess.run(
        ["crash", "-s", lb["vmlinux"], vmcore, "-i", fh.name], capture_output=True, text=True, timeout=600
    )
    dt = time.perf_counter() - t
    os.unlink(fh.name)
    lines = sum(1 for ln in p.stdout.splitlines() if ln.startswith("/") and ": " in ln)
    return dt, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child: one cold ktriage run
    a = ap.parse_args()
    lb = lab()
    c = trace(lb, a.frames)
    if a.one:
        print(json.dumps(run_ktriage(lb, c)))
        return
    vmcore = lb["scenarios"]["null-member"]["vmcore"]
    print(f"trace: {len(c.frames)} frames + IP {c.ip}; vmlinux {lb['vmlinux']}; module {lb['crashmod_ko']}")
    # each measurement in a fresh process: nothing cached (drgn reuses opened files inside one process)
    kt = []
    for _ in range(a.repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--one", "--frames", str(a.frames)], capture_output=True, text=True, check=True
        ).stdout
        kt.append(json.loads(out.strip().splitlines()[-1]))
    k_med = statistics.median(x[0] for x in kt)
    print(
        f"ktriage (fresh process each; imports and log parsing not timed): median {k_med:.3f}s of {[round(x[0], 3) for x in kt]}; "
        f"{kt[0][1]}/{len(c.frames) + 1} frames with file:line, {kt[0][2]} disassembly lines"
    )
    log = lb["scenarios"]["null-member"]["console_log"]
    cli = []
    exe = shutil.which("ktriage") or ""
    for _ in range(a.repeat):
        t = time.perf_counter()
        subprocess.run(
            [
                exe or sys.executable,
                *([] if exe else ["-m", "ktriage.cli"]),
                "analyze",
                "--vmlinux",
                lb["vmlinux"],
                "--debuginfo",
                str(Path(lb["crashmod_ko"]).parent),
                log,
            ],
            capture_output=True,
            check=False,
        )
        cli.append(time.perf_counter() - t)
    c_cli = statistics.median(cli)
    print(f"ktriage analyze CLI on null-member.console.log (whole report): median {c_cli:.3f}s")
    if not shutil.which("crash"):
        print("crash: not installed (apt-get install crash): no ratio")
        return
    cr = [run_crash(lb, c, vmcore) for _ in range(a.repeat)]
    c_med = statistics.median(x[0] for x in cr)
    print(
        f"crash -s vmlinux vmcore (sym + dis -l per frame, dis -l of the function): median {c_med:.3f}s of "
        f"{[round(x[0], 3) for x in cr]}; {cr[0][1]} source-line lines printed"
    )
    print(
        f"ratio crash / ktriage (find+load+symbolize+dis): {c_med / k_med:.1f}x; crash / ktriage CLI: {c_med / c_cli:.1f}x"
    )


if __name__ == "__main__":
    main()
