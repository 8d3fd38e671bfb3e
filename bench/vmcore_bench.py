#!/usr/bin/env python3
"""Time to a full vmcore report: `ktriage analyze VMCORE --vmlinux ... --format json` next to `crash`
batch `sys; mod -s MODULE KO; bt; log; dis -l <RIP>` on the same vmcore and vmlinux, and ktriage with NO debug
info (the BTF tier: types from the dump's own BTF; crash cannot start without a vmlinux).

Wall time (median of --repeat runs, after one warm-up of each so both read a warm page cache) and
peak RSS (ru_maxrss of the child, from wait4) of both, and their ratio; CPU seconds (user + system of the child
and what it waited for, from wait4) too: on a machine shared with other jobs wall time follows the load, CPU time
much less.

    python3 bench/vmcore_bench.py                       # every lab scenario's kdump vmcore
    python3 bench/vmcore_bench.py --scenario null-member --repeat 5
    python3 bench/vmcore_bench.py --vmcore F --vmlinux V [--module-ko K]
    python3 bench/vmcore_bench.py --target 5.10         # Debian 11's 5.10 (lab/old510.py): + the System.map tier
    python3 bench/vmcore_bench.py --target stock        # Debian's stock 6.1 kernel (lab/stock.py all + dbg)

On the 5.10 target (no kallsyms in VMCOREINFO) "BTF-only" means the dump alone: symbols from the kallsyms tables
ktriage finds in the dump's memory; "System.map" gives the -dbg package's map with --system-map instead. crash
needs the -dbg vmlinux: without it (lab/old510.py --no-dbg) crash cannot run and only ktriage's tiers are timed.

On the stock target the vmlinux is the -dbg package's (633 MB, full DWARF; `python3 lab/stock.py dbg` extracts it)
and the module debug file is crashmod.ko (built with DWARF against the stock headers), as for the lab target;
the dumps are QEMU's kdump-zlib files (flattened makedumpfile format), which both tools read as they are.
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

# As installed for a user: pip writes bytecode at install time. A PYTHONDONTWRITEBYTECODE=1 in the caller's
# environment (this project's sandboxes set it) would make every ktriage run recompile ~50 modules (~0.1 s).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd: list[str], stdin_text: str | None = None) -> tuple[float, int, int, bytes, float]:
    """(seconds, peak RSS in KiB, exit status, stdout, CPU seconds) of one child (CPU: user + system of the child
    and the processes it waited for, all threads: less sensitive than wall time to other jobs on the machine)."""
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out:
        if stdin_text is not None:
            inp.write(stdin_text.encode())
            inp.seek(0)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=inp, stdout=out, stderr=subprocess.DEVNULL, env=CHILD_ENV)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return dt, ru.ru_maxrss, p.returncode, out.read(), ru.ru_utime + ru.ru_stime


def ktriage_cmd(vmcore: str, vmlinux: str | None, ko: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "ktriage.cli", "analyze", vmcore, "--format", "json"]
    if vmlinux:
        cmd += ["--vmlinux", vmlinux]
    if ko:
        cmd += ["--debuginfo", str(Path(ko).parent)]
    return cmd


def rip_of(report: dict) -> str | None:
    """The faulting IP for `dis -l`, from ktriage's own report (register, else symbol+offset)."""
    for c in report.get("crashes", []):
        for f in c.get("findings", []):
            if f["code"] == "vmcore.stack":
                regs = f["data"].get("registers") or {}
                if regs.get("rip"):
                    return f"{regs['rip']:#x}"
        crash = c.get("crash", c)
        ip = crash.get("ip") or {}
        if ip.get("symbol") and ip.get("offset") is not None:
            return f"{ip['symbol']}+{ip['offset']}"
    return None


def crash_cmds(ko: str | None, module: str | None, rip: str | None) -> str:
    lines = ["sys"]
    if ko and module:
        lines.append(f"mod -s {module} {ko}")
    lines += ["bt", "log"]
    if rip:
        lines.append(f"dis -l {rip}")
    lines.append("quit")
    return "\n".join(lines) + "\n"


def bench_one(name: str, vmcore: str, vmlinux: str, ko: str | None, repeat: int, system_map: str | None = None) -> dict:
    kcmd = ktriage_cmd(vmcore, vmlinux, ko)
    _, _, rc, out, _ = run(kcmd)  # warm-up, and the RIP for crash's dis -l
    if rc != 0:
        return {"scenario": name, "error": f"ktriage exit {rc}"}
    rip = rip_of(json.loads(out))
    cmds = crash_cmds(ko, Path(ko).stem if ko else None, rip)
    ccmd = ["crash", "-s", vmlinux, vmcore]
    run(ccmd, cmds)  # warm-up
    bcmd = ktriage_cmd(vmcore, None, None)
    run(bcmd)  # warm-up
    mcmd = bcmd + ["--system-map", system_map] if system_map else None
    if mcmd:
        run(mcmd)  # warm-up
    kt, cr, bt, mt = [], [], [], []
    for _ in range(repeat):
        kt.append(run(kcmd))
        cr.append(run(ccmd, cmds))
        bt.append(run(bcmd))
        if mcmd:
            mt.append(run(mcmd))
    k_s = statistics.median(x[0] for x in kt)
    c_s = statistics.median(x[0] for x in cr)
    b_s = statistics.median(x[0] for x in bt)
    k_cpu = statistics.median(x[4] for x in kt)
    c_cpu = statistics.median(x[4] for x in cr)
    k_rss = max(x[1] for x in kt) / 1024
    c_rss = max(x[1] for x in cr) / 1024
    row = (
        {}
        if not mt
        else {
            "smap_s": round(statistics.median(x[0] for x in mt), 2),
            "smap_rss_mb": round(max(x[1] for x in mt) / 1024),
        }
    )
    return row | {
        "scenario": name,
        "ktriage_s": round(k_s, 2),
        "crash_s": round(c_s, 2),
        "speedup": round(c_s / k_s, 1) if k_s else None,
        "ktriage_cpu_s": round(k_cpu, 2),
        "crash_cpu_s": round(c_cpu, 2),
        "cpu_ratio": round(c_cpu / k_cpu, 1) if k_cpu else None,
        "btf_cpu_s": round(statistics.median(x[4] for x in bt), 2),
        "ktriage_rss_mb": round(k_rss),
        "btf_s": round(b_s, 2),
        "btf_speedup": round(c_s / b_s, 1) if b_s else None,
        "btf_rss_mb": round(max(x[1] for x in bt) / 1024),
        "crash_rss_mb": round(c_rss),
        "rss_ratio": round(c_rss / k_rss, 2) if k_rss else None,
        "crash_rc": cr[-1][2],
        "crash_cmds": cmds.strip().replace("\n", "; "),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", action="append", help="lab scenario(s); default: all with a kdump vmcore")
    ap.add_argument("--vmcore")
    ap.add_argument("--vmlinux")
    ap.add_argument("--module-ko")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print JSON rows only")
    ap.add_argument(
        "--target",
        choices=["lab", "5.10", "stock"],
        default="lab",
        help="lab.json (small 6.1), old510.json (5.10) or stock.json (Debian's stock 6.1 with its -dbg vmlinux)",
    )
    a = ap.parse_args()
    if not shutil.which("crash"):
        print("crash is not installed: apt-get install crash", file=sys.stderr)
        return 2
    jobs: list[tuple[str, str, str, str | None, str | None]] = []
    if a.vmcore:
        if not a.vmlinux:
            ap.error("--vmcore needs --vmlinux")
        jobs.append((Path(a.vmcore).name, a.vmcore, a.vmlinux, a.module_ko, None))
    elif a.target == "5.10":
        cache = Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")
        old = json.loads((cache / "old510.json").read_text())
        if not old.get("vmlinux_dbg"):
            print("crash cannot run: no -dbg vmlinux (lab/old510.py was run with --no-dbg)", file=sys.stderr)
            return 2
        for name, s in old["scenarios"].items():
            if (a.scenario and name not in a.scenario) or not s.get("ok") or not s.get("vmcore"):
                continue
            jobs.append((name, s["vmcore"], old["vmlinux_dbg"], old["crashmod_ko"], old.get("system_map")))
    elif a.target == "stock":
        cache = Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")
        stock = json.loads((cache / "stock.json").read_text())
        if not stock.get("dbg"):
            print("no -dbg vmlinux for the stock kernel: python3 lab/stock.py dbg", file=sys.stderr)
            return 2
        for name, s in stock["scenarios"].items():
            if (a.scenario and name not in a.scenario) or not s.get("ok") or not s.get("vmcore"):
                continue
            jobs.append((name, s["vmcore"], stock["dbg"]["vmlinux"], stock["crashmod_ko"], None))
    else:
        cache = Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")
        lab = json.loads((cache / "lab.json").read_text())
        for name, s in lab["scenarios"].items():
            if (a.scenario and name not in a.scenario) or not s.get("ok") or not s.get("vmcore"):
                continue
            jobs.append((name, s["vmcore"], lab["vmlinux"], lab["crashmod_ko"], None))
    rows = []
    for name, vmcore, vmlinux, ko, smap in jobs:
        r = bench_one(name, vmcore, vmlinux, ko, a.repeat, smap)
        rows.append(r)
        if a.json:
            print(json.dumps(r), flush=True)
        elif "error" in r:
            print(f"{r['scenario']:<18} {r['error']}", flush=True)
        else:
            print(
                f"{r['scenario']:<18} ktriage+DWARF {r['ktriage_s']:5.2f}s {r['ktriage_rss_mb']:4d} MB | ktriage "
                f"BTF-only {r['btf_s']:5.2f}s {r['btf_rss_mb']:4d} MB | "
                + (f"System.map+BTF {r['smap_s']:5.2f}s {r['smap_rss_mb']:4d} MB | " if "smap_s" in r else "")
                + f"crash {r['crash_s']:5.2f}s "
                f"{r['crash_rss_mb']:4d} MB | crash/ktriage time x{r['speedup']} (BTF x{r['btf_speedup']}), "
                f"RSS x{r['rss_ratio']} | CPU ktriage {r['ktriage_cpu_s']:.2f}s (BTF {r['btf_cpu_s']:.2f}s) "
                f"crash {r['crash_cpu_s']:.2f}s x{r['cpu_ratio']}",
                flush=True,
            )
    ok = [r for r in rows if "error" not in r]
    if ok and not a.json:
        print(
            f"median over {len(ok)} vmcores: ktriage {statistics.median(r['ktriage_s'] for r in ok):.2f}s, "
            f"crash {statistics.median(r['crash_s'] for r in ok):.2f}s, time ratio "
            f"x{statistics.median(r['speedup'] for r in ok):.1f}; ktriage with no debug info (BTF tier) "
            f"{statistics.median(r['btf_s'] for r in ok):.2f}s, x{statistics.median(r['btf_speedup'] for r in ok):.1f}"
            f"; peak RSS ktriage {max(r['ktriage_rss_mb'] for r in ok)} MB (BTF "
            f"{max(r['btf_rss_mb'] for r in ok)} MB), crash {max(r['crash_rss_mb'] for r in ok)} MB"
        )
        print(f"crash commands: {ok[0]['crash_cmds']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
