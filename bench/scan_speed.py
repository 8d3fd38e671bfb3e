#!/usr/bin/env python3
"""Log scanning throughput: ktriage vs `grep -E` with the same trigger words, same file, one run.

Generates a realistic syslog (/var/log/messages style: systemd, sshd, cron, audit and routine
kernel lines) of --size-mb megabytes with a few real crash reports spliced in (syzkaller's corpus
when present, else the lab's console logs in tests/fixtures/lab), then times:
  grep   grep -E -c '<ktriage trigger words>' FILE
  ktriage  ktriage analyze --no-analysis --format json FILE   (full parse of every crash)
and prints MB/s of both and the ratio, plus ktriage's peak RSS.

    python bench/scan_speed.py [--size-mb 1024] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
LAB_LOGS = ROOT / "tests" / "fixtures" / "lab"

ROUTINE = [
    "systemd[1]: Started Session {n} of user root.",
    "systemd-logind[812]: New session {n} of user admin.",
    "sshd[{pid}]: Accepted publickey for admin from 10.1.{a}.{b} port {port} ssh2: RSA SHA256:abc{n}",
    "sshd[{pid}]: pam_unix(sshd:session): session closed for user admin",
    "CROND[{pid}]: (root) CMD (/usr/lib64/sa/sa1 1 1)",
    "kernel: IPv4: martian source 10.2.{a}.{b} from 10.2.{b}.{a}, on dev eth0",
    "kernel: device veth{n} entered promiscuous mode",
    "kernel: docker0: port {a}(veth{n}) entered forwarding state",
    "kernel: TCP: request_sock_TCP: Possible SYN flooding on port {port}. Sending cookies.",
    "kernel: nf_conntrack: nf_conntrack: table full, dropping packet",
    'audit[{pid}]: AVC avc:  denied  {{ read }} for  pid={pid} comm="httpd" name="f{n}"',
    "dbus-daemon[700]: [system] Successfully activated service 'org.freedesktop.nm_dispatcher'",
    "NetworkManager[900]: <info>  [{n}.{a}] dhcp4 (eth0): state changed bound -> bound",
    "chronyd[650]: Selected source 10.0.0.{a}",
    "kernel: EXT4-fs (dm-{a}): mounted filesystem with ordered data mode. Opts: (null)",
]
TRIGGERS = (
    "BUG|WARNING|INFO:|Oops|Unable to handle|general protection|Kernel panic|kernel BUG|UBSAN|"
    "list_add|list_del|corruption|refcount_t|Internal error|divide error|double fault|stack segment|"
    "invalid opcode|LOCKUP|Hardware Error|unregister_netdevice|usercopy|rcu_preempt|rcu_sched|"
    "Unhandled fault|Alignment trap|ODEBUG|VFS: |cut here"
)


def crash_texts() -> list[list[str]]:
    """Four real crash reports: from syzkaller's corpus when it is beside the repo, else from the QEMU
    lab's console logs kept in tests/fixtures (a clone from the public home has no ../shared)."""
    texts = []
    for name in ("21", "510", "1000", "243"):
        p = SHARED / "corpora" / "syzkaller" / name
        if p.exists():
            body = p.read_text(errors="replace").partition("\n\n")[2]
            texts.append([l.split("] ", 1)[-1] for l in body.splitlines()][:80])
    if texts:
        return texts
    trigger = re.compile(TRIGGERS)
    for name in ("null-member", "bug-on", "list-corruption", "warn"):
        lines = [l.split("] ", 1)[-1] for l in (LAB_LOGS / f"{name}.console.log").read_text().splitlines()]
        start = next(i for i, l in enumerate(lines) if trigger.search(l) and "command line" not in l.lower())
        texts.append(lines[start : start + 80])
    return texts


def generate(path: Path, size: int, seed: int = 1) -> int:
    rnd = random.Random(seed)
    crashes = crash_texts()
    planted = 0
    with open(path, "w") as f:
        written, n = 0, 0
        next_crash = size // (len(crashes) + 1)
        while written < size:
            n += 1
            secs = n // 50
            stamp = (
                f"Nov {1 + (secs // 86400) % 28:2d} {(secs // 3600) % 24:02d}:{(secs // 60) % 60:02d}:{secs % 60:02d}"
            )
            if crashes and written >= next_crash:
                for line in crashes.pop():
                    f.write(f"{stamp} web01 kernel: {line}\n")
                planted += 1
                next_crash += size // 5
            line = rnd.choice(ROUTINE).format(
                n=n, pid=1000 + n % 30000, a=n % 250, b=(n * 7) % 250, port=1024 + n % 60000
            )
            s = f"{stamp} web01 {line}\n"
            f.write(s)
            written += len(s)
    return planted


def timed(cmd: list[str]) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return dt, p.stdout, ru.ru_maxrss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keep", help="write the generated log here and keep it")
    a = ap.parse_args()
    out = Path(a.keep) if a.keep else Path(tempfile.mkdtemp()) / "messages"
    if not out.exists() or out.stat().st_size < a.size_mb << 20:
        planted = generate(out, a.size_mb << 20)
    else:
        planted = -1
    mb = out.stat().st_size / 1e6
    subprocess.run(["cat", str(out)], stdout=subprocess.DEVNULL)  # same page-cache state for both
    g_dt, g_out, _ = timed(["grep", "-E", "-c", TRIGGERS, str(out)])
    k_dt, k_out, k_rss = timed(
        [sys.executable, "-m", "ktriage.cli", "analyze", "--no-analysis", "--format", "json", str(out)]
    )
    found = len(json.loads(k_out)["crashes"]) if k_out else 0
    print(f"file                 {out} ({mb:.0f} MB, {planted if planted >= 0 else '?'} crashes planted)")
    print(f"grep -E -c           {g_dt:6.2f} s  {mb / g_dt:8.1f} MB/s  ({g_out.strip()} matching lines)")
    print(
        f"ktriage analyze      {k_dt:6.2f} s  {mb / k_dt:8.1f} MB/s  ({found} crashes parsed, peak RSS {k_rss / 1024:.0f} MB)"
    )
    print(f"ratio ktriage/grep   {g_dt / k_dt:.2f} of grep's throughput (target >= 0.25)")
    if not a.keep:
        os.unlink(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
