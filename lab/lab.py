#!/usr/bin/env python3
"""ktriage crash lab: real kernel crashes under QEMU (TCG), with console logs and vmcores.

    python3 lab/lab.py build            # build what is missing (kernel, crashmod, initramfs)
    python3 lab/lab.py run SCENARIO...  # (re)run scenarios, keep console log + vmcore
    python3 lab/lab.py all              # build + run every scenario that has no artifacts yet (x86_64, then arm64)
    python3 lab/lab.py arm64 [NAME...]  # arm64 only (console logs, no kdump): build if missing, run
    python3 lab/lab.py list             # what the cache holds
    python3 lab/lab.py fixtures         # copy console logs into tests/fixtures/lab/ (`fixtures arm64`: lab-arm64/)
    python3 lab/lab.py prune            # delete cached kernels/builds/runs the sources no longer select

Everything large lives in the cache, outside the git tree:
    ${KTRIAGE_LAB_CACHE:-$HOME/.cache/ktriage-lab}
keyed by the linux-source package version and a hash of lab/kernel.config (kernel), and by a hash
of the crashmod source / init scripts (runs). `lab.json` in the cache root names the current set
so tests can find it (see tests/lab/conftest.py).
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time

import common
from common import CACHE, log

LAB = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(LAB)
NPROC = os.cpu_count() or 2

APT_PACKAGES = (
    "qemu-system-x86 busybox-static kexec-tools makedumpfile cpio kmod flex bison bc "
    "libelf-dev libssl-dev build-essential e2fsprogs xz-utils zstd dwarves "
    "gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu qemu-system-arm"
).split()


def sh(cmd, cwd=None, env=None, check=True, quiet=False, **kw):
    if isinstance(cmd, str):
        args = ["bash", "-ec", cmd]
    else:
        args = list(cmd)
    if not quiet:
        log(("$ " + cmd) if isinstance(cmd, str) else "$ " + " ".join(args))
    return subprocess.run(args, cwd=cwd, env=env, check=check, **kw)


def exclusive(path: str, who: str):  # type: ignore[no-untyped-def]
    """An flock-held file: two lab processes on one cache take turns (two `make` in one tree corrupt it).
    Returns the open file; closing it releases the lock."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock = open(path, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another {who} holds {path}; waiting for it")
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def sha(*paths: str, extra: str = "") -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(os.path.basename(p).encode() + b"\0" + f.read())
    h.update(extra.encode())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------- host tools


def ensure_host_tools() -> None:
    need = {
        "qemu-system-x86_64": "qemu-system-x86",
        "kexec": "kexec-tools",
        "makedumpfile": "makedumpfile",
        "cpio": "cpio",
        "flex": "flex",
        "bison": "bison",
        "bc": "bc",
        "mkfs.ext4": "e2fsprogs",
        "debugfs": "e2fsprogs",
        "zstd": "zstd",
        "gcc": "build-essential",
        "pahole": "dwarves",
        # the arm64 lab: cross compiler, cross binutils (addr2line/objdump for the tests), QEMU virt
        "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
        "aarch64-linux-gnu-addr2line": "binutils-aarch64-linux-gnu",
        "qemu-system-aarch64": "qemu-system-arm",
    }
    missing = [pkg for tool, pkg in need.items() if not shutil.which(tool) and not os.path.exists("/sbin/" + tool)]
    if not os.path.exists("/bin/busybox") and not os.path.exists("/usr/bin/busybox"):
        missing.append("busybox-static")
    if not os.path.exists("/usr/include/libelf.h"):
        missing.append("libelf-dev")
    if not os.path.exists("/usr/include/openssl/ssl.h"):
        missing.append("libssl-dev")
    if not os.path.exists("/usr/aarch64-linux-gnu/lib/libc.a"):  # static init for the arm64 initramfs
        missing.append("gcc-aarch64-linux-gnu")
    if missing:
        log(f"installing host packages (missing: {sorted(set(missing))})")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh(["apt-get", "update", "-qq"], env=env)
        sh(["apt-get", "install", "-y", "-qq", *APT_PACKAGES], env=env)


def busybox_path() -> str:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    raise SystemExit("busybox-static not installed")


# --------------------------------------------------------------------------- kernel


def source_deb() -> str:
    dl = os.path.join(CACHE, "dl")
    os.makedirs(dl, exist_ok=True)
    debs = sorted(glob.glob(os.path.join(dl, "linux-source-6.1_*_all.deb")))
    if debs:
        return debs[-1]
    with open(os.path.join(dl, ".lock"), "w") as lk:  # the x86 and arm64 labs may both want it first
        fcntl.flock(lk, fcntl.LOCK_EX)
        return _download_source(dl)


def _download_source(dl: str) -> str:
    debs = sorted(glob.glob(os.path.join(dl, "linux-source-6.1_*_all.deb")))
    if not debs:
        log("downloading linux-source-6.1 (139 MB)")
        if sh(["apt-get", "download", "linux-source-6.1"], cwd=dl, stderr=subprocess.DEVNULL, check=False).returncode:
            sh(["apt-get", "update", "-qq"])
            sh(["apt-get", "download", "linux-source-6.1"], cwd=dl, stderr=subprocess.DEVNULL)
        debs = sorted(glob.glob(os.path.join(dl, "linux-source-6.1_*_all.deb")))
    return debs[-1]


def kernel_key() -> tuple[str, str]:
    deb = source_deb()
    ver = os.path.basename(deb).split("_")[1]
    return deb, f"{ver}-{sha(os.path.join(LAB, 'kernel.config'))}"


def kernel_dir() -> str:
    return os.path.join(CACHE, "kernel", kernel_key()[1])


def parse_fragment(path: str) -> dict[str, str]:
    want = {}
    for line in open(path):
        line = line.strip()
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            want[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^# (CONFIG_\w+) is not set$", line)
        if m:
            want[m.group(1)] = "n"
    return want


def build_kernel() -> str:
    deb, key = kernel_key()
    return make_kernel(deb, key, os.path.join(LAB, "kernel.config"), ["ARCH=x86_64"])


def make_kernel(deb: str, key: str, frag: str, arch_args: list[str], sub: str = "kernel") -> str:
    """Unpack linux-source into <sub>/<key>/linux, `make tinyconfig` + `frag` (every line verified), build."""
    kdir = os.path.join(CACHE, sub, key)
    tree = os.path.join(kdir, "linux")
    stamp = os.path.join(kdir, "BUILT")
    if os.path.exists(stamp):
        log(f"kernel {key}: cached ({tree})")
        return tree
    t0 = time.time()
    os.makedirs(kdir, exist_ok=True)
    if not os.path.exists(os.path.join(tree, "Makefile")):
        log(f"kernel {key}: unpacking {os.path.basename(deb)}")
        tmp = os.path.join(kdir, "deb")
        shutil.rmtree(tmp, ignore_errors=True)
        sh(["dpkg", "-x", deb, tmp])
        tarball = glob.glob(os.path.join(tmp, "usr/src/linux-source-*.tar.xz"))[0]
        sh(["tar", "-xf", tarball, "-C", kdir])
        shutil.rmtree(tmp)
        src = glob.glob(os.path.join(kdir, "linux-source-*"))[0]
        os.rename(src, tree)
    mk = ["make", "-C", tree, *arch_args, f"-j{NPROC}"]
    sh(mk + ["tinyconfig"], stdout=subprocess.DEVNULL)
    sh(
        [os.path.join(tree, "scripts/kconfig/merge_config.sh"), "-m", "-O", tree, os.path.join(tree, ".config"), frag],
        cwd=tree,
        stdout=subprocess.DEVNULL,
    )
    sh(mk + ["olddefconfig"], stdout=subprocess.DEVNULL)
    have = {}
    for line in open(os.path.join(tree, ".config")):
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line.strip())
        if m:
            have[m.group(1)] = m.group(2)
    bad = [(k, v, have.get(k, "n")) for k, v in parse_fragment(frag).items() if have.get(k, "n") != v]
    if bad:
        raise SystemExit("kernel config did not take: " + ", ".join(f"{k}={v} (got {g})" for k, v, g in bad))
    log(f"kernel {key}: building (about 10 min on 2 cores)")
    with open(os.path.join(kdir, "build.log"), "w") as out:
        r = subprocess.run(mk + ["all"], stdout=out, stderr=subprocess.STDOUT)
    if r.returncode:
        sh(["tail", "-40", os.path.join(kdir, "build.log")], check=False)
        raise SystemExit("kernel build failed")
    dt = time.time() - t0
    with open(stamp, "w") as f:
        json.dump({"key": key, "build_seconds": round(dt)}, f)
    log(f"kernel {key}: built in {dt:.0f} s")
    return tree


# --------------------------------------------------------------------------- crashmod + initramfs

BUILD_INPUTS = [os.path.join(LAB, p) for p in ("crashmod/crashmod.c", "crashmod/Kbuild", "init.sh", "udpsend.c")]


def build_key() -> str:
    return f"{kernel_key()[1]}-{sha(*BUILD_INPUTS)}"


def build_dir() -> str:
    return os.path.join(CACHE, "build", build_key())


def ldd_libs(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def make_cpio(root: str, out: str) -> None:
    sh(f"cd {root} && find . -print0 | cpio --null -o -H newc --quiet | gzip -6 > {out}", quiet=True)


def build_crashmod(bdir: str, tree: str, make_args: list[str]) -> None:
    """A fresh build dir with crashmod.ko built out of tree against the lab kernel (full DWARF like the
    kernel, split BTF when the kernel has BTF)."""
    shutil.rmtree(bdir, ignore_errors=True)
    os.makedirs(bdir)
    mdir = os.path.join(bdir, "crashmod")
    shutil.copytree(os.path.join(LAB, "crashmod"), mdir)
    sh(["make", "-C", tree, *make_args, f"M={mdir}", "modules"], stdout=subprocess.DEVNULL)
    shutil.copy(os.path.join(mdir, "crashmod.ko"), os.path.join(bdir, "crashmod.ko"))


def build_userspace(tree: str) -> str:
    bdir = build_dir()
    stamp = os.path.join(bdir, "BUILT")
    if os.path.exists(stamp):
        log(f"crashmod + initramfs {os.path.basename(bdir)}: cached")
        return bdir
    t0 = time.time()
    build_crashmod(bdir, tree, ["ARCH=x86_64"])
    sh(["gcc", "-O2", "-static", "-o", os.path.join(bdir, "udpsend"), os.path.join(LAB, "udpsend.c")])
    # capture initramfs: busybox + makedumpfile (+ its shared libraries)
    cap = os.path.join(bdir, "capture-root")
    main_root = os.path.join(bdir, "initrd-root")
    for root in (cap, main_root):
        for d in (
            "bin",
            "sbin",
            "proc",
            "sys",
            "dev",
            "mnt",
            "tmp",
            "root",
            "lib/modules",
            "boot",
            "usr/bin",
            "usr/sbin",
        ):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy(busybox_path(), os.path.join(root, "bin/busybox"))
        shutil.copy(os.path.join(LAB, "init.sh"), os.path.join(root, "init"))
        os.chmod(os.path.join(root, "init"), 0o755)

    def add_binary(root: str, name: str) -> None:
        path = shutil.which(name) or f"/usr/sbin/{name}"
        shutil.copy(path, os.path.join(root, "bin", name))
        for lib in ldd_libs(path):
            dst = os.path.join(root, lib.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(lib, dst)

    add_binary(cap, "makedumpfile")
    make_cpio(cap, os.path.join(bdir, "capture.cpio.gz"))
    # first-kernel initramfs: busybox, kexec, crashmod.ko, udpsend, and the capture kernel + initramfs
    add_binary(main_root, "kexec")
    shutil.copy(os.path.join(bdir, "crashmod.ko"), os.path.join(main_root, "lib/modules/crashmod.ko"))
    shutil.copy(os.path.join(bdir, "udpsend"), os.path.join(main_root, "bin/udpsend"))
    shutil.copy(os.path.join(tree, "arch/x86/boot/bzImage"), os.path.join(main_root, "boot/bzImage"))
    shutil.copy(os.path.join(bdir, "capture.cpio.gz"), os.path.join(main_root, "boot/capture.cpio.gz"))
    make_cpio(main_root, os.path.join(bdir, "initrd.cpio.gz"))
    shutil.rmtree(cap)
    shutil.rmtree(main_root)
    with open(stamp, "w") as f:
        json.dump({"key": os.path.basename(bdir), "build_seconds": round(time.time() - t0)}, f)
    log(f"crashmod + initramfs built in {time.time() - t0:.0f} s")
    return bdir


# --------------------------------------------------------------------------- scenarios

BOOT_ARGS = "console=ttyS0 loglevel=7 oops=panic slab_nomerge crashkernel=128M"

# name -> extra kernel args, whether to also take a QEMU ELF dump (second boot without kdump),
# and the console line that proves the scenario happened.
SCENARIOS: dict[str, dict] = {
    "null-member": {
        "args": "",
        "qemu_elf": True,
        "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a30",
    },
    "null-member-timer": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a30"},
    "null-member-work": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a30"},
    "netfilter-udp": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a38"},
    "uaf-poison": {
        "args": "",
        "expect": r"general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b",
    },
    "list-corruption": {"args": "", "expect": r"list_del corruption"},
    "oob-small-object": {"args": "", "expect": r"general protection fault, probably for non-canonical address"},
    "hung-task": {
        "args": "sysctl.kernel.hung_task_timeout_secs=5 hung_task_panic=1",
        "expect": r"INFO: task \S+ blocked for more than \d+ seconds",
    },
    "deadlock": {
        "args": "sysctl.kernel.hung_task_timeout_secs=5 hung_task_panic=1",
        "expect": r"INFO: task crashmod_[ab]:\d+ blocked for more than \d+ seconds",
    },
    "soft-lockup": {
        "args": "softlockup_panic=1 watchdog_thresh=5 clocksource=hpet tsc=reliable",
        "expect": r"watchdog: BUG: soft lockup - CPU#\d+ stuck",
    },
    "bug-on": {"args": "", "expect": r"kernel BUG at .*crashmod\.c:\d+!"},
    "warn": {"args": "panic_on_warn=1", "expect": r"WARNING: CPU: \d+ PID: \d+ at .*crashmod\.c:\d+ crashmod_warn"},
    "panic": {
        "args": "",
        "qemu_elf": True,
        "expect": r"Kernel panic - not syncing: crashmod: explicit panic requested",
    },
    "race-member": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a30"},
    "synrecv-sk": {"args": "", "expect": r"BUG: kernel NULL pointer dereference|general protection fault"},
}

QEMU_BASE = [
    "qemu-system-x86_64",
    "-accel",
    "tcg",
    "-cpu",
    "max,la57=off",
    "-m",
    "512",
    "-smp",
    "2",
    "-display",
    "none",
    "-no-reboot",
    "-monitor",
    "none",
    "-device",
    "vmcoreinfo",
]


def spec_hash(name: str) -> str:
    return common.spec_hash(BOOT_ARGS, QEMU_BASE, SCENARIOS[name])


def runs_dir() -> str:
    return os.path.join(CACHE, "runs", build_key())


def qmp(sock_path: str, *commands: dict, timeout: float = 120) -> list:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    f = s.makefile("rwb")
    json.loads(f.readline())
    out = []
    for cmd in ({"execute": "qmp_capabilities"},) + commands:
        f.write(json.dumps(cmd).encode() + b"\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                return out
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                out.append(msg)
                break
    s.close()
    return out


def wait_for(path: str, pattern: str, timeout: float) -> bool:
    deadline = time.time() + timeout
    rx = re.compile(pattern.encode())
    while time.time() < deadline:
        try:
            with open(path, "rb") as f:
                if rx.search(f.read()):
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    return False


def run_scenario(name: str, tree: str, bdir: str, timeout: float = 300) -> dict:
    spec = SCENARIOS[name]
    sdir = os.path.join(runs_dir(), name)
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(sdir)
    bz = os.path.join(tree, "arch/x86/boot/bzImage")
    initrd = os.path.join(bdir, "initrd.cpio.gz")
    append = f"{BOOT_ARGS} panic=5 {spec['args']} lab.kdump=1 lab.action={name}".replace("  ", " ")
    disk = os.path.join(sdir, "disk.img")
    sh(["truncate", "-s", "256M", disk], quiet=True)
    sh(["mkfs.ext4", "-q", "-F", "-L", "vmcore", disk], quiet=True)
    console = os.path.join(sdir, "console.log")
    meta = {"scenario": name, "spec": spec_hash(name), "cmdline": append, "build": os.path.basename(bdir)}
    log(f"{name}: booting (kdump)")
    t0 = time.time()
    cmd = QEMU_BASE + [
        "-kernel",
        bz,
        "-initrd",
        initrd,
        "-append",
        append,
        "-drive",
        f"file={disk},format=raw,if=virtio",
        "-serial",
        f"file:{console}",
    ]
    try:
        subprocess.run(cmd, timeout=timeout, check=False)
        meta["timed_out"] = False
    except subprocess.TimeoutExpired:
        meta["timed_out"] = True
    meta["kdump_seconds"] = round(time.time() - t0, 1)
    vmcore = os.path.join(sdir, "vmcore")
    subprocess.run(["debugfs", "-R", f"dump /vmcore {vmcore}", disk], capture_output=True)
    subprocess.run(
        ["debugfs", "-R", f"dump /makedumpfile.log {os.path.join(sdir, 'makedumpfile.log')}", disk], capture_output=True
    )
    os.unlink(disk)
    text = open(console, "rb").read().decode("utf-8", "replace")
    m = re.search(spec["expect"], text)
    meta["key_line"] = m.group(0) if m else None
    meta["vmcore"] = os.path.exists(vmcore) and os.path.getsize(vmcore) > 0
    meta["vmcore_bytes"] = os.path.getsize(vmcore) if meta["vmcore"] else 0
    if meta["vmcore"]:
        with open(vmcore, "rb") as f:
            meta["vmcore_format"] = (
                "kdump-compressed (makedumpfile -c -d 31)" if f.read(8) == b"KDUMP   " else "unknown"
            )
    if spec.get("qemu_elf"):
        hang = f"{BOOT_ARGS} panic=0 {spec['args']} lab.kdump=0 lab.action={name}".replace("  ", " ")
        meta.update(
            run_qemu_elf(
                name,
                sdir,
                QEMU_BASE + ["-kernel", bz, "-initrd", initrd, "-append", hang],
                timeout,
                r"---\[ end Kernel panic",
            )
        )
    meta["ok"] = bool(
        meta["key_line"]
        and meta["vmcore"]
        and meta.get("vmcore_format", "").startswith("kdump")
        and (not spec.get("qemu_elf") or meta.get("qemu_elf"))
    )
    with open(os.path.join(sdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log(
        f"{name}: {'OK' if meta['ok'] else 'FAILED'} in {meta['kdump_seconds']} s; "
        f"key line: {meta['key_line']!r}; vmcore {meta['vmcore_bytes']} bytes"
    )
    return meta


def run_qemu_elf(name: str, sdir: str, boot: list[str], timeout: float, panicked: str) -> dict:
    """A boot (QEMU command with kernel, initrd and a `panic=0` command line) that is left hanging after the
    panic, then QMP dump-guest-memory (ELF, no paging): QEMU's own dump, registers at dump time."""
    console = os.path.join(sdir, "console.qemu-elf.log")
    sock = os.path.join(sdir, "qmp.sock")
    pidfile = os.path.join(sdir, "qemu.pid")
    log(f"{name}: booting (QEMU ELF dump)")
    t0 = time.time()
    cmd = boot + [
        "-serial",
        f"file:{console}",
        "-qmp",
        f"unix:{sock},server=on,wait=off",
        "-daemonize",
        "-pidfile",
        pidfile,
    ]
    sh(cmd, quiet=True)
    out = {"qemu_elf": None}
    try:
        if wait_for(console, panicked, timeout):
            time.sleep(1)
            elf = os.path.join(sdir, "vmcore.qemu.elf")
            qmp(sock, {"execute": "dump-guest-memory", "arguments": {"paging": False, "protocol": f"file:{elf}"}})
            if os.path.exists(elf):
                out["qemu_elf"] = "vmcore.qemu.elf"
                out["qemu_elf_bytes"] = os.path.getsize(elf)
        qmp(sock, {"execute": "quit"})
    except Exception as e:  # noqa: BLE001
        log(f"{name}: QMP failed: {e}")
    finally:
        try:
            pid = int(open(pidfile).read())
            time.sleep(1)
            os.kill(pid, 9)
        except (OSError, ValueError):
            pass
    out["qemu_elf_seconds"] = round(time.time() - t0, 1)
    return out


def scenario_done(name: str) -> bool:
    return common.run_done(runs_dir(), name, spec_hash(name))


def write_manifest(tree: str, bdir: str) -> str:
    scen = common.manifest_scenarios(runs_dir(), SCENARIOS, qemu_elf=True)
    kstamp = json.load(open(os.path.join(os.path.dirname(tree), "BUILT")))
    manifest = {
        "kernel_key": kernel_key()[1],
        "build_key": os.path.basename(bdir),
        "kernel_build_seconds": kstamp.get("build_seconds"),
        "vmlinux": os.path.join(tree, "vmlinux"),
        "bzImage": os.path.join(tree, "arch/x86/boot/bzImage"),
        "crashmod_ko": os.path.join(bdir, "crashmod.ko"),
        "scenarios": scen,
    }
    return update_manifest(None, manifest)


# --------------------------------------------------------------------------- arm64 (console logs only)
#
# The same linux-source-6.1, cross-built for arm64 with Debian's gcc-aarch64-linux-gnu from the fragment
# lab/kernel.arm64.config, booted on QEMU's `virt` machine (TCG). No kdump: the arm64 lab proves the
# debug-info-without-vmcore path (console log + vmlinux/crashmod.ko DWARF). The userspace is one static
# C program (lab/init-arm64.c) because busybox for arm64 needs multiarch on the host.
# Its own lock (<cache>/.lock-arm64): it never waits for an x86 build, and vice versa.

ARM64_CROSS = "aarch64-linux-gnu-"
# arm64 trees live in kernel-arm64/, not kernel/: tests treat every kernel/*/linux/vmlinux as an x86 lab build
ARM64_KERNELS = "kernel-arm64"
ARM64_MAKE = ["ARCH=arm64", f"CROSS_COMPILE={ARM64_CROSS}"]
ARM64_FRAGMENT = os.path.join(LAB, "kernel.arm64.config")
ARM64_BUILD_INPUTS = [
    os.path.join(LAB, p) for p in ("crashmod/crashmod.c", "crashmod/Kbuild", "init-arm64.c", "udpsend.c")
]
ARM64_BOOT_ARGS = "console=ttyAMA0 loglevel=7 oops=panic slab_nomerge panic=1"
ARM64_QEMU = [
    "qemu-system-aarch64",
    "-M",
    "virt",
    "-cpu",
    "cortex-a57",
    "-accel",
    "tcg",
    "-m",
    "512",
    "-smp",
    "2",
    "-display",
    "none",
    "-no-reboot",
    "-monitor",
    "none",
]
_A64_FAULT = r"Unable to handle kernel (?:NULL pointer dereference|paging request) at virtual address "
ARM64_SCENARIOS: dict[str, dict] = {
    "null-member": {"args": "", "qemu_elf": True, "expect": _A64_FAULT + "0000000000000a30"},
    "null-member-timer": {"args": "", "expect": _A64_FAULT + "0000000000000a30"},
    "null-member-work": {"args": "", "expect": _A64_FAULT + "0000000000000a30"},
    "netfilter-udp": {"args": "", "qemu_elf": True, "expect": _A64_FAULT + "0000000000000a38"},
    # arm64 ignores the top byte of a data address (TBI): the poisoned pointer 0x6b6b.. faults as 006b6b..
    "uaf-poison": {"args": "", "expect": _A64_FAULT + "[0-9a-f]{2}6b6b6b6b6b6b6b"},
    "list-corruption": {"args": "", "expect": r"list_del corruption"},
    "oob-small-object": {"args": "", "expect": _A64_FAULT + "[0-9a-f]*6b6b6b"},
    "hung-task": {
        "args": "sysctl.kernel.hung_task_timeout_secs=5 hung_task_panic=1",
        "qemu_elf": True,
        "expect": r"INFO: task \S+ blocked for more than \d+ seconds",
    },
    "soft-lockup": {
        "args": "softlockup_panic=1 watchdog_thresh=5",
        "expect": r"watchdog: BUG: soft lockup - CPU#\d+ stuck",
    },
    "bug-on": {"args": "", "expect": r"kernel BUG at .*crashmod\.c:\d+!"},
    "warn": {"args": "panic_on_warn=1", "expect": r"WARNING: CPU: \d+ PID: \d+ at .*crashmod\.c:\d+ crashmod_warn"},
    "panic": {"args": "", "expect": r"Kernel panic - not syncing: crashmod: explicit panic requested"},
}


def arm64_kernel_key() -> tuple[str, str]:
    deb = source_deb()
    ver = os.path.basename(deb).split("_")[1]
    return deb, f"{ver}-arm64-{sha(ARM64_FRAGMENT)}"  # "-arm64-": never the key of an x86 kernel


def arm64_build_key() -> str:
    return f"{arm64_kernel_key()[1]}-{sha(*ARM64_BUILD_INPUTS)}"


def arm64_runs_dir() -> str:
    return os.path.join(CACHE, "runs", arm64_build_key())


def arm64_spec_hash(name: str) -> str:
    return common.spec_hash(ARM64_BOOT_ARGS, ARM64_QEMU, ARM64_SCENARIOS[name])


def build_arm64_kernel() -> str:
    deb, key = arm64_kernel_key()
    return make_kernel(deb, key, ARM64_FRAGMENT, ARM64_MAKE, ARM64_KERNELS)


def build_arm64_userspace(tree: str) -> str:
    bdir = os.path.join(CACHE, "build", arm64_build_key())
    stamp = os.path.join(bdir, "BUILT")
    if os.path.exists(stamp):
        log(f"arm64 crashmod + initramfs {os.path.basename(bdir)}: cached")
        return bdir
    t0 = time.time()
    build_crashmod(bdir, tree, ARM64_MAKE)
    root = os.path.join(bdir, "initrd-root")
    for d in ("bin", "proc", "sys", "dev", "lib/modules"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    gcc = ARM64_CROSS + "gcc"
    sh([gcc, "-O2", "-static", "-Wall", "-o", os.path.join(root, "init"), os.path.join(LAB, "init-arm64.c")])
    sh([gcc, "-O2", "-static", "-o", os.path.join(root, "bin/udpsend"), os.path.join(LAB, "udpsend.c")])
    shutil.copy(os.path.join(bdir, "crashmod.ko"), os.path.join(root, "lib/modules/crashmod.ko"))
    make_cpio(root, os.path.join(bdir, "initrd.cpio.gz"))
    shutil.rmtree(root)
    with open(stamp, "w") as f:
        json.dump({"key": os.path.basename(bdir), "build_seconds": round(time.time() - t0)}, f)
    log(f"arm64 crashmod + initramfs built in {time.time() - t0:.0f} s")
    return bdir


def run_arm64_scenario(name: str, tree: str, bdir: str, timeout: float = 240) -> dict:
    spec = ARM64_SCENARIOS[name]
    sdir = os.path.join(arm64_runs_dir(), name)
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(sdir)
    append = f"{ARM64_BOOT_ARGS} {spec['args']} lab.action={name}".replace("  ", " ")
    console = os.path.join(sdir, "console.log")
    meta = {
        "scenario": name,
        "arch": "arm64",
        "spec": arm64_spec_hash(name),
        "cmdline": append,
        "build": os.path.basename(bdir),
    }
    log(f"arm64 {name}: booting")
    t0 = time.time()
    cmd = ARM64_QEMU + [
        "-kernel",
        os.path.join(tree, "arch/arm64/boot/Image"),
        "-initrd",
        os.path.join(bdir, "initrd.cpio.gz"),
        "-append",
        append,
        "-serial",
        f"file:{console}",
    ]
    try:  # oops=panic + panic=1 reboot, and -no-reboot makes QEMU exit
        subprocess.run(cmd, timeout=timeout, check=False)
        meta["timed_out"] = False
    except subprocess.TimeoutExpired:
        meta["timed_out"] = True
    meta["run_seconds"] = round(time.time() - t0, 1)
    text = open(console, "rb").read().decode("utf-8", "replace")
    m = re.search(spec["expect"], text)
    meta["key_line"] = m.group(0) if m else None
    meta["panicked"] = "Kernel panic - not syncing" in text  # panic=1: "Rebooting in 1 seconds..", no end marker
    if spec.get("qemu_elf"):  # a second boot left hanging after the panic, dumped by QEMU (VMCOREINFO via fw_cfg)
        hang = re.sub(r"(?<!\S)panic=1(?!\S)", "panic=0", append)  # not hung_task_panic=1
        meta.update(
            run_qemu_elf(
                name,
                sdir,
                ARM64_QEMU
                + [
                    "-device",
                    "vmcoreinfo",
                    "-kernel",
                    os.path.join(tree, "arch/arm64/boot/Image"),
                    "-initrd",
                    os.path.join(bdir, "initrd.cpio.gz"),
                    "-append",
                    hang,
                ],
                timeout,
                r"---\[ end Kernel panic",
            )
        )
    meta["ok"] = bool(meta["key_line"] and meta["panicked"] and (not spec.get("qemu_elf") or meta.get("qemu_elf")))
    with open(os.path.join(sdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log(f"arm64 {name}: {'OK' if meta['ok'] else 'FAILED'} in {meta['run_seconds']} s; key line: {meta['key_line']!r}")
    return meta


def arm64_scenario_done(name: str) -> bool:
    return common.run_done(arm64_runs_dir(), name, arm64_spec_hash(name))


def update_manifest(section: str | None, data: dict) -> str:
    """Write lab.json: x86 keys at the top level (section None), the arm64 lab under "arm64"; the other
    architecture's part is kept (both write under <cache>/.manifest.lock)."""
    path = os.path.join(CACHE, "lab.json")
    with open(os.path.join(CACHE, ".manifest.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            old = json.load(open(path))
        except (OSError, ValueError):
            old = {}
        if section is None:
            manifest = dict(data)
            if "arm64" in old:
                manifest["arm64"] = old["arm64"]
        else:
            manifest = dict(old, **{section: data})
        return common.write_json(path, manifest)


def write_arm64_manifest(tree: str, bdir: str) -> str:
    scen = common.manifest_scenarios(arm64_runs_dir(), ARM64_SCENARIOS, vmcore=False, qemu_elf=True)
    kstamp = json.load(open(os.path.join(os.path.dirname(tree), "BUILT")))
    return update_manifest(
        "arm64",
        {
            "arch": "arm64",
            "kernel_key": arm64_kernel_key()[1],
            "build_key": os.path.basename(bdir),
            "kernel_build_seconds": kstamp.get("build_seconds"),
            "vmlinux": os.path.join(tree, "vmlinux"),
            "Image": os.path.join(tree, "arch/arm64/boot/Image"),
            "crashmod_ko": os.path.join(bdir, "crashmod.ko"),
            "addr2line": ARM64_CROSS + "addr2line",
            "objdump": ARM64_CROSS + "objdump",
            "scenarios": scen,
        },
    )


def lab_arm64(names: list[str] | None = None, force: bool = False) -> list[str]:
    """Build the arm64 kernel/crashmod/initramfs if missing, run the scenarios; returns the failed ones."""
    t0 = time.time()
    lock = exclusive(os.path.join(CACHE, ".lock-arm64"), "lab.py")
    try:
        tree = build_arm64_kernel()
        bdir = build_arm64_userspace(tree)
        for n in names or ():
            if n not in ARM64_SCENARIOS:
                raise SystemExit(f"unknown arm64 scenario {n}; known: {', '.join(ARM64_SCENARIOS)}")
        failed = common.run_all(
            names or list(ARM64_SCENARIOS),
            lambda n: not force and not names and arm64_scenario_done(n),
            lambda n: run_arm64_scenario(n, tree, bdir),
            "arm64 ",
        )
        path = write_arm64_manifest(tree, bdir)
        log(f"arm64 manifest {path}; arm64 total {time.time() - t0:.0f} s")
        return failed
    finally:
        lock.close()


def cmd_list() -> None:
    print(f"cache: {CACHE}")
    for sub in ("kernel", ARM64_KERNELS, "build", "runs"):
        for d in sorted(glob.glob(os.path.join(CACHE, sub, "*"))):
            print(f"  {sub}/{os.path.basename(d)}")
    if not glob.glob(os.path.join(CACHE, "dl", "linux-source-6.1_*_all.deb")):
        print("nothing built yet: python3 lab/lab.py all")
        return
    print(f"current build: {build_key()}")
    for name in SCENARIOS:
        p = os.path.join(runs_dir(), name, "meta.json")
        if os.path.exists(p):
            m = json.load(open(p))
            state = "ok" if scenario_done(name) else ("stale" if m.get("ok") else "FAILED")
            print(
                f"  {name:18} {state:6} {m.get('kdump_seconds')}s vmcore={m.get('vmcore_bytes')}"
                f" qemu_elf={m.get('qemu_elf_bytes', '-')}  {m.get('key_line')}"
            )
        else:
            print(f"  {name:18} missing")
    print(f"arm64 build: {arm64_build_key()}")
    for name in ARM64_SCENARIOS:
        p = os.path.join(arm64_runs_dir(), name, "meta.json")
        if os.path.exists(p):
            m = json.load(open(p))
            state = "ok" if arm64_scenario_done(name) else ("stale" if m.get("ok") else "FAILED")
            print(f"  arm64 {name:18} {state:6} {m.get('run_seconds')}s  {m.get('key_line')}")
        else:
            print(f"  arm64 {name:18} missing")


def cmd_fixtures() -> None:
    dst = os.path.join(REPO, "tests", "fixtures", "lab")
    os.makedirs(dst, exist_ok=True)
    for name in SCENARIOS:
        src = os.path.join(runs_dir(), name, "console.log")
        if scenario_done(name):
            shutil.copy(src, os.path.join(dst, f"{name}.console.log"))
            log(f"fixture {name}.console.log")


def cmd_fixtures_arm64() -> None:
    """Separate (`lab.py fixtures arm64`): tests/test_arm64_logs.py checks values read by hand from these logs
    (registers, pids, Code: words), which change with every run; refresh them only together with that test."""
    dst = os.path.join(REPO, "tests", "fixtures", "lab-arm64")
    os.makedirs(dst, exist_ok=True)
    for name in ARM64_SCENARIOS:
        if arm64_scenario_done(name):
            shutil.copy(os.path.join(arm64_runs_dir(), name, "console.log"), os.path.join(dst, f"{name}.console.log"))
            log(f"fixture lab-arm64/{name}.console.log")


def cmd_prune() -> None:
    """Remove kernel trees, builds and runs that the current sources no longer select."""
    keep = {
        os.path.join(CACHE, "kernel", kernel_key()[1]),
        build_dir(),
        runs_dir(),
        os.path.join(CACHE, ARM64_KERNELS, arm64_kernel_key()[1]),
        os.path.join(CACHE, "build", arm64_build_key()),
        arm64_runs_dir(),
    }
    for sub in ("kernel", ARM64_KERNELS, "build", "runs"):
        for d in glob.glob(os.path.join(CACHE, sub, "*")):
            if d not in keep:
                log(f"removing {d}")
                shutil.rmtree(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["build", "run", "all", "list", "fixtures", "kernel", "prune", "arm64"])
    ap.add_argument("scenarios", nargs="*", help="scenario names for run (default: all)")
    ap.add_argument("--force", action="store_true", help="rerun scenarios even if cached")
    a = ap.parse_args()
    if a.cmd == "list":
        return cmd_list()
    if a.cmd == "fixtures":
        return cmd_fixtures_arm64() if a.scenarios == ["arm64"] else cmd_fixtures()
    if a.cmd == "prune":
        return cmd_prune()
    if a.cmd == "arm64":  # arm64 only: its own lock, never waits for an x86 build
        ensure_host_tools()
        failed = lab_arm64(a.scenarios or None, a.force)
        if failed:
            raise SystemExit(f"arm64 scenarios failed: {', '.join(failed)}")
        return
    t0 = time.time()
    lock = exclusive(os.path.join(CACHE, ".lock"), "lab.py")  # noqa: F841 - held until the process exits
    ensure_host_tools()
    tree = build_kernel()
    if a.cmd == "kernel":
        return
    bdir = build_userspace(tree)
    if a.cmd in ("run", "all"):
        names = a.scenarios or list(SCENARIOS)
        for n in names:
            if n not in SCENARIOS:
                raise SystemExit(f"unknown scenario {n}; known: {', '.join(SCENARIOS)}")
        failed = common.run_all(
            names,
            lambda n: not a.force and a.cmd == "all" and scenario_done(n),
            lambda n: run_scenario(n, tree, bdir),
        )
        path = write_manifest(tree, bdir)
        log(f"manifest {path}; total {time.time() - t0:.0f} s")
        lock.close()  # the arm64 part has its own lock
        if a.cmd == "all":
            failed += [f"arm64 {n}" for n in lab_arm64(force=a.force)]
            log(f"x86_64 + arm64 total {time.time() - t0:.0f} s")
        if failed:
            raise SystemExit(f"scenarios failed: {', '.join(failed)}")
    else:
        write_manifest(tree, bdir)
        log(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
