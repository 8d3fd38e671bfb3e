#!/usr/bin/env python3
"""ktriage crash lab, stock Debian kernel target: real production-kernel vmcores WITHOUT debug info.

    python3 lab/stock.py all    # download + build what is missing, run every scenario without a good run
    python3 lab/stock.py list   # what the stock cache holds
    python3 lab/stock.py dbg    # + the kernel's -dbg package (858 MB download): vmlinux with DWARF, modules' debug files

The kernel is whatever Debian's `linux-image-amd64` metapackage points at today (6.1.0-<abi>-amd64; the ABI
number moves with security updates, never hard-coded). Nothing is installed on the host: the image, headers
and kbuild .debs are `apt-get download`ed and `dpkg -x`ed into the cache. crashmod (lab/crashmod/, unchanged)
is built out of tree against linux-headers-<abi>-amd64 with the kernel's vmlinux (extracted from vmlinuz with
the kernel tree's scripts/extract-vmlinux) in the headers build dir, so the module gets split BTF like a
distribution module. Each scenario boots the stock vmlinuz under QEMU TCG with a busybox initramfs
(lab/stock-init.sh) that loads a production-like set of stock modules + crashmod and triggers the crash; once
the panic is over, QMP `dump-guest-memory` writes a kdump-zlib (flattened makedumpfile) vmcore.

Cache: ${KTRIAGE_LAB_CACHE:-~/.cache/ktriage-lab}/stock/<package version>/, serialized by flock on
stock/.lock; `stock.json` in the cache root names the current set (tests/lab/test_stock_kernel.py reads it).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time

import common
from common import CACHE

LAB = os.path.dirname(os.path.abspath(__file__))
STOCK = os.path.join(CACHE, "stock")
MANIFEST = os.path.join(CACHE, "stock.json")
META_PKG = "linux-image-amd64"

# lab.py's helpers (sh, sha, qmp, make_cpio, busybox_path, source_deb: the shared linux-source download)
_spec = importlib.util.spec_from_file_location("ktriage_lab", os.path.join(LAB, "lab.py"))
L = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(L)
log, sh, sha = L.log, L.sh, L.sha

APT_PACKAGES = "qemu-system-x86 busybox-static makedumpfile cpio kmod build-essential gcc-12 dwarves xz-utils".split()

# Stock modules loaded before crashmod, as on a production VM: fw_cfg (QEMU dumps carry VMCOREINFO only with it),
# virtio networking, conntrack, nf_tables and NFQUEUE (dependencies resolved with `modprobe --show-depends`).
STOCK_MODULES = ["qemu_fw_cfg", "virtio_pci", "virtio_net", "nf_conntrack", "nf_tables", "nfnetlink_queue"]

BUILD_INPUTS = [os.path.join(LAB, p) for p in ("crashmod/crashmod.c", "crashmod/Kbuild", "stock-init.sh", "udpsend.c")]

# oops=panic: an oops panics; panic=0: the guest stays in the panic so QMP can dump it (-no-reboot anyway)
BOOT_ARGS = "console=ttyS0 loglevel=7 oops=panic panic=0"
QEMU = [
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
    "-nic",
    "none",
]
SCENARIOS: dict[str, dict] = {
    "null-member": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a30"},
    "netfilter-udp": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a38"},
    # as lab.py: the blocked writer is reported after 5 s instead of 120 s, and the report panics
    "hung-task": {
        "args": "sysctl.kernel.hung_task_timeout_secs=5 hung_task_panic=1",
        "expect": r"INFO: task \S+ blocked for more than \d+ seconds",
    },
}


# --------------------------------------------------------------------------- host + packages


def ensure_host_tools() -> None:
    need = {
        "qemu-system-x86_64": "qemu-system-x86",
        "makedumpfile": "makedumpfile",
        "cpio": "cpio",
        "depmod": "kmod",
        "gcc-12": "gcc-12",
        "make": "build-essential",
        "pahole": "dwarves",
        "xz": "xz-utils",
    }
    missing = [p for tool, p in need.items() if not shutil.which(tool) and not os.path.exists("/sbin/" + tool)]
    if not os.path.exists("/bin/busybox") and not os.path.exists("/usr/bin/busybox"):
        missing.append("busybox-static")
    if missing:
        log(f"installing host packages (missing: {sorted(set(missing))})")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh(["apt-get", "update", "-qq"], env=env)
        sh(["apt-get", "install", "-y", "-qq", *APT_PACKAGES], env=env)


def _apt(args: list[str]) -> str:
    return subprocess.run(["apt-cache", *args], capture_output=True, text=True).stdout


def resolve_kernel() -> tuple[str, str]:
    """(Debian package version, ABI such as 6.1.0-56) of the kernel the metapackage selects today."""
    for attempt in (0, 1):
        m = re.search(r"Candidate:\s*(\S+)", _apt(["policy", META_PKG]))
        if m and m.group(1) != "(none)":
            ver = m.group(1)
            deps = _apt(["depends", f"{META_PKG}={ver}"])
            a = re.search(r"Depends: linux-image-(\d+\.\d+\.\d+-\d+)-amd64\b", deps)
            if a:
                return ver, a.group(1)
        if attempt == 0:
            log(f"{META_PKG} not in the apt lists: apt-get update")
            sh(["apt-get", "update", "-qq"])
    raise SystemExit(f"cannot resolve {META_PKG} to a kernel package (apt-cache policy/depends)")


def kernel_dir(ver: str) -> str:
    return os.path.join(STOCK, ver)


def fetch_kernel(ver: str, abi: str) -> dict:
    """Download + dpkg -x the image, headers (+ common) and kbuild packages; depmod; extract vmlinux."""
    kdir = kernel_dir(ver)
    root = os.path.join(kdir, "root")
    release = f"{abi}-amd64"
    hdr = os.path.join(root, "usr/src", f"linux-headers-{release}")
    info = {
        "version": ver,
        "abi": abi,
        "release": release,
        "root": root,
        "headers": hdr,
        "vmlinuz": os.path.join(root, "boot", f"vmlinuz-{release}"),
        "module_dir": os.path.join(root, "lib/modules", release),
        "vmlinux": os.path.join(hdr, "vmlinux"),
    }
    stamp = os.path.join(kdir, "UNPACKED")
    if os.path.exists(stamp):
        log(f"stock kernel {release} ({ver}): cached")
        return dict(info, **json.load(open(stamp)))
    t0 = time.time()
    dl = os.path.join(kdir, "dl")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(dl, exist_ok=True)
    kbuild = "linux-kbuild-" + re.match(r"\d+\.\d+", abi).group(0)  # linux-kbuild-6.1: scripts/, objtool
    pkgs = [
        f"linux-image-{release}={ver}",
        f"linux-headers-{release}={ver}",
        f"linux-headers-{abi}-common={ver}",
        f"{kbuild}={ver}",
    ]
    log(f"stock kernel {release} ({ver}): downloading {', '.join(p.split('=')[0] for p in pkgs)}")
    for d in glob.glob(os.path.join(dl, "*.deb")):
        os.unlink(d)
    if sh(["apt-get", "download", *pkgs], cwd=dl, stderr=subprocess.DEVNULL, check=False).returncode:
        sh(["apt-get", "update", "-qq"])  # stale lists: the mirror dropped that version; retry once
        sh(["apt-get", "download", *pkgs], cwd=dl, stderr=subprocess.DEVNULL)
    t1 = time.time()
    for deb in sorted(glob.glob(os.path.join(dl, "*.deb"))):
        sh(["dpkg", "-x", deb, root], quiet=True)
    dl_bytes = sum(os.path.getsize(d) for d in glob.glob(os.path.join(dl, "*.deb")))
    shutil.rmtree(dl)
    # the headers' Makefile includes the -common tree by its installed path: point it into the cache
    mk = os.path.join(hdr, "Makefile")
    text = open(mk).read()
    open(mk, "w").write(text.replace("/usr/src/", os.path.join(root, "usr/src") + "/"))
    sh(["depmod", "-b", root, release], quiet=True)
    # the kernel's own vmlinux (no DWARF, but its .BTF) in the headers build dir: Makefile.modfinal runs
    # `pahole -J --btf_base vmlinux` on each module only when ./vmlinux exists there
    with open(info["vmlinux"], "wb") as out:
        sh(["sh", extract_vmlinux_script(), info["vmlinuz"]], stdout=out, quiet=True)
    sections = subprocess.run(["readelf", "-SW", info["vmlinux"]], capture_output=True, text=True).stdout
    if " .BTF " not in sections:
        raise SystemExit(f"{info['vmlinux']}: no .BTF section (extract-vmlinux failed?)")
    extra = {
        "download_bytes": dl_bytes,
        "download_seconds": round(t1 - t0, 1),
        "unpack_seconds": round(time.time() - t1, 1),
    }
    with open(stamp, "w") as f:
        json.dump(extra, f)
    log(
        f"stock kernel {release}: {dl_bytes >> 20} MB downloaded in {extra['download_seconds']} s, "
        f"unpacked + depmod + vmlinux in {extra['unpack_seconds']} s"
    )
    return dict(info, **extra)


def extract_vmlinux_script() -> str:
    """scripts/extract-vmlinux of the kernel tree, taken once from the linux-source-6.1 .deb the lab shares
    (<cache>/dl/). Neither the headers nor linux-kbuild ship it. ~10 s: the tarball is read up to scripts/."""
    path = os.path.join(STOCK, "tools", "extract-vmlinux")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    deb = L.source_deb()
    log(f"extract-vmlinux from {os.path.basename(deb)}")
    cmd = (
        f"dpkg-deb --fsys-tarfile {deb} | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' "
        f"| tar -xJ --occurrence=1 -O --wildcards '*/scripts/extract-vmlinux' > {path}.tmp"
    )
    subprocess.run(["bash", "-c", cmd], stderr=subprocess.DEVNULL)  # tar stops early: the pipe breaks upstream
    if not os.path.exists(path + ".tmp") or not open(path + ".tmp").read().startswith("#!/bin/sh"):
        raise SystemExit(f"could not take scripts/extract-vmlinux out of {deb}")
    os.replace(path + ".tmp", path)
    return path


# --------------------------------------------------------------------------- crashmod + initramfs


def build_key(ver: str) -> str:
    return sha(*BUILD_INPUTS, extra=" ".join(STOCK_MODULES))


def build_dir(ver: str) -> str:
    return os.path.join(kernel_dir(ver), "build", build_key(ver))


def module_deps(k: dict) -> list[str]:
    """The stock modules to load, dependencies first, as paths relative to the module dir."""
    out: list[str] = []
    for name in STOCK_MODULES:
        r = subprocess.run(
            ["modprobe", "-d", k["root"], "-S", k["release"], "--show-depends", name], capture_output=True, text=True
        )
        if r.returncode:
            raise SystemExit(f"modprobe --show-depends {name}: {r.stderr.strip()}")
        for line in r.stdout.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod":
                rel = os.path.relpath(parts[1], k["module_dir"])
                if rel not in out:
                    out.append(rel)
    return out


def build(k: dict) -> str:
    bdir = build_dir(k["version"])
    stamp = os.path.join(bdir, "BUILT")
    if os.path.exists(stamp):
        log(f"crashmod + initramfs {os.path.basename(bdir)}: cached")
        return bdir
    t0 = time.time()
    shutil.rmtree(bdir, ignore_errors=True)
    os.makedirs(bdir)
    mdir = os.path.join(bdir, "crashmod")
    os.makedirs(mdir)
    for f in ("crashmod.c", "Kbuild"):  # unchanged copies
        shutil.copy(os.path.join(LAB, "crashmod", f), mdir)
    # RESOLVE_BTFIDS: the headers package does not ship tools/bpf/resolve_btfids; it only patches a module's
    # .BTF_ids section (BTF_ID() users), which crashmod does not have, so `true` is what it would do
    sh(["make", "-C", k["headers"], f"M={mdir}", "RESOLVE_BTFIDS=true", "modules"], stdout=subprocess.DEVNULL)
    ko = os.path.join(bdir, "crashmod.ko")
    shutil.copy(os.path.join(mdir, "crashmod.ko"), ko)
    sections = subprocess.run(["readelf", "-SW", ko], capture_output=True, text=True).stdout
    if " .BTF " not in sections:
        raise SystemExit(f"{ko} has no .BTF section: split BTF was not generated (is vmlinux in {k['headers']}?)")
    sh(
        ["gcc", "-O2", "-static", "-o", os.path.join(bdir, "udpsend"), os.path.join(LAB, "udpsend.c")],
        quiet=True,
        stderr=subprocess.DEVNULL,
    )
    root = os.path.join(bdir, "initrd-root")
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "lib/modules"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(L.busybox_path(), os.path.join(root, "bin/busybox"))
    shutil.copy(os.path.join(LAB, "stock-init.sh"), os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o755)
    shutil.copy(os.path.join(bdir, "udpsend"), os.path.join(root, "bin/udpsend"))
    shutil.copy(ko, os.path.join(root, "lib/modules/crashmod.ko"))
    deps = module_deps(k)
    with open(os.path.join(root, "lib/modules/load.list"), "w") as f:
        for rel in deps:
            dst = os.path.join(root, "lib/modules", os.path.basename(rel))
            shutil.copy(os.path.join(k["module_dir"], rel), dst)
            f.write(os.path.basename(rel) + "\n")
    L.make_cpio(root, os.path.join(bdir, "initrd.cpio.gz"))
    shutil.rmtree(root)
    meta = {
        "key": os.path.basename(bdir),
        "build_seconds": round(time.time() - t0, 1),
        "modules": [os.path.basename(r)[:-3].replace("-", "_") for r in deps] + ["crashmod"],
        "initrd_bytes": os.path.getsize(os.path.join(bdir, "initrd.cpio.gz")),
    }
    with open(stamp, "w") as f:
        json.dump(meta, f, indent=1)
    log(f"crashmod (split BTF) + udpsend + initramfs ({len(deps)} stock modules) built in {meta['build_seconds']} s")
    return bdir


# --------------------------------------------------------------------------- scenarios


def spec_hash(name: str) -> str:
    return common.spec_hash(BOOT_ARGS, QEMU, SCENARIOS[name])


def runs_dir(ver: str) -> str:
    return os.path.join(kernel_dir(ver), "runs", build_key(ver))


def run_scenario(name: str, k: dict, bdir: str, timeout: float = 240) -> dict:
    spec = SCENARIOS[name]
    sdir = os.path.join(runs_dir(k["version"]), name)
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(sdir)
    console = os.path.join(sdir, "console.log")
    sock = os.path.join(sdir, "qmp.sock")
    vmcore = os.path.join(sdir, "vmcore")
    append = f"{BOOT_ARGS} {spec['args']} lab.action={name}".replace("  ", " ")
    meta = {
        "scenario": name,
        "spec": spec_hash(name),
        "cmdline": append,
        "build": os.path.basename(bdir),
        "release": k["release"],
        "version": k["version"],
    }
    log(f"{name}: booting {k['release']} (TCG)")
    t0 = time.time()
    cmd = QEMU + [
        "-kernel",
        k["vmlinuz"],
        "-initrd",
        os.path.join(bdir, "initrd.cpio.gz"),
        "-append",
        append,
        "-serial",
        f"file:{console}",
        "-qmp",
        f"unix:{sock},server=on,wait=off",
    ]
    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        meta["panicked"] = L.wait_for(console, r"---\[ end Kernel panic", timeout)
        meta["panic_seconds"] = round(time.time() - t0, 1)
        if meta["panicked"]:
            time.sleep(1)  # the other CPU's NMI stop and the last console lines
            t1 = time.time()
            out = L.qmp(
                sock,
                {
                    "execute": "dump-guest-memory",
                    "arguments": {"paging": False, "protocol": f"file:{vmcore}", "format": "kdump-zlib"},
                },
            )
            meta["dump_seconds"] = round(time.time() - t1, 1)
            if any("error" in o for o in out):
                meta["dump_error"] = [o["error"] for o in out if "error" in o]
        L.qmp(sock, {"execute": "quit"})
    except Exception as e:  # noqa: BLE001
        log(f"{name}: QMP failed: {e}")
        meta["qmp_error"] = str(e)
    finally:
        try:
            qemu.wait(timeout=20)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
    meta["run_seconds"] = round(time.time() - t0, 1)
    for p in (sock,):
        if os.path.exists(p):
            os.unlink(p)
    text = open(console, "rb").read().decode("utf-8", "replace")
    m = re.search(spec["expect"], text)
    meta["key_line"] = m.group(0) if m else None
    meta["vmcore"] = os.path.exists(vmcore) and os.path.getsize(vmcore) > 0
    meta["vmcore_bytes"] = os.path.getsize(vmcore) if meta["vmcore"] else 0
    if meta["vmcore"]:
        with open(vmcore, "rb") as f:
            head = f.read(16)
        meta["vmcore_format"] = (
            "kdump-zlib, flattened (makedumpfile -R reassembles it)" if head.startswith(b"makedumpfile") else "unknown"
        )
    meta["ok"] = bool(meta["key_line"] and meta["panicked"] and meta.get("vmcore_format", "").startswith("kdump"))
    with open(os.path.join(sdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log(
        f"{name}: {'OK' if meta['ok'] else 'FAILED'} in {meta['run_seconds']} s "
        f"(panic at {meta.get('panic_seconds')} s); key line: {meta['key_line']!r}; vmcore {meta['vmcore_bytes'] >> 20} MB"
    )
    return meta


def scenario_meta(ver: str, name: str) -> dict | None:
    return common.read_meta(runs_dir(ver), name)


def scenario_done(ver: str, name: str) -> bool:
    return common.run_done(runs_dir(ver), name, spec_hash(name))


def write_manifest(k: dict, bdir: str) -> str:
    scen = common.manifest_scenarios(runs_dir(k["version"]), SCENARIOS)
    bmeta = json.load(open(os.path.join(bdir, "BUILT")))
    manifest = {
        "kernel_release": k["release"],
        "package_version": k["version"],
        "abi": k["abi"],
        "metapackage": META_PKG,
        "vmlinuz": k["vmlinuz"],
        "module_dir": k["module_dir"],
        "vmlinux_no_debuginfo": k["vmlinux"],
        "headers": k["headers"],
        "build_key": os.path.basename(bdir),
        "crashmod_ko": os.path.join(bdir, "crashmod.ko"),
        "modules": bmeta["modules"],
        "initrd": os.path.join(bdir, "initrd.cpio.gz"),
        "scenarios": scen,
    }
    dbg = dbg_info(k["version"], k["release"])
    if dbg:
        manifest["dbg"] = dbg  # `stock.py dbg` ran for this package version
    return common.write_json(MANIFEST, manifest)


def prune(k: dict, bdir: str) -> None:
    """stock.json names one set: builds/runs of older crashmod/init sources (~115 MB of vmcores each) and
    packages the metapackage no longer selects (~670 MB each) are deleted."""
    keep = {kernel_dir(k["version"]), bdir, runs_dir(k["version"]), os.path.join(STOCK, "tools")}
    stale = [d for d in glob.glob(os.path.join(STOCK, "*")) if os.path.isdir(d) and d not in keep]
    stale += [
        d
        for sub in ("build", "runs")
        for d in glob.glob(os.path.join(kernel_dir(k["version"]), sub, "*"))
        if d not in keep
    ]
    for d in stale:
        log(f"removing stale {os.path.relpath(d, CACHE)}")
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- -dbg package (not in `all`)


def dbg_dir(ver: str) -> str:
    return os.path.join(kernel_dir(ver), "dbg")


def dbg_info(ver: str, release: str) -> dict | None:
    """Paths of the extracted -dbg files, when `stock.py dbg` has run for this package version."""
    d = dbg_dir(ver)
    stamp = os.path.join(d, "EXTRACTED")
    if not os.path.exists(stamp):
        return None
    return dict(
        json.load(open(stamp)),
        vmlinux=os.path.join(d, "usr/lib/debug/boot", f"vmlinux-{release}"),
        modules_dir=os.path.join(d, "usr/lib/debug/lib/modules", release),
    )


def fetch_dbg(m: dict) -> dict:
    """`apt-get download linux-image-<release>-dbg=<version>` (858 MB, 5.6 GB unpacked) and extract only the
    vmlinux (633 MB, full DWARF, as installed: /usr/lib/debug/boot/vmlinux-<release>) and the debug files of the
    modules the scenarios load, in the package's own layout under <version>/dbg/; the .deb is deleted after.
    Not part of `all`: the download and the one-stream xz extraction (~80 s idle, ~3 min on a busy machine)
    would double the stock target's time in CI, and only bench/vmcore_bench.py --target stock needs it."""
    ver, release = m["package_version"], m["kernel_release"]
    hit = dbg_info(ver, release)
    if hit:
        log(f"-dbg of {release} ({ver}): cached")
        return hit
    d = dbg_dir(ver)
    dl = os.path.join(d, "dl")
    os.makedirs(dl, exist_ok=True)
    pkg = f"linux-image-{release}-dbg"
    t0 = time.time()
    debs = glob.glob(os.path.join(dl, f"{pkg}_*.deb"))
    reused = bool(debs)  # a download interrupted before its extraction
    if not debs:
        log(f"downloading {pkg}={ver} (~860 MB)")
        if sh(["apt-get", "download", f"{pkg}={ver}"], cwd=dl, stderr=subprocess.DEVNULL, check=False).returncode:
            sh(["apt-get", "update", "-qq"])
            sh(["apt-get", "download", f"{pkg}={ver}"], cwd=dl, stderr=subprocess.DEVNULL)
        debs = glob.glob(os.path.join(dl, f"{pkg}_*.deb"))
    deb = debs[0]
    t1 = time.time()
    dl_bytes = os.path.getsize(deb)
    # module debug files by the paths modprobe resolved for the initramfs (kernel/...ko, relative to the module dir)
    k = {"root": os.path.join(kernel_dir(ver), "root"), "release": release, "module_dir": m["module_dir"]}
    mods = [f"./usr/lib/debug/lib/modules/{release}/{rel}" for rel in module_deps(k)]
    members = [f"./usr/lib/debug/boot/vmlinux-{release}", *mods]
    log(f"extracting vmlinux + {len(mods)} module debug files from {os.path.basename(deb)} (one xz stream)")
    r = subprocess.run(
        ["bash", "-c", f"set -o pipefail; dpkg-deb --fsys-tarfile {deb} | tar -x -C {d} " + " ".join(members)],
        stderr=subprocess.PIPE,
        text=True,
    )
    if r.returncode:
        raise SystemExit(f"extracting {deb} failed: {r.stderr.strip()[-300:]}")
    extra = {
        "package": f"{pkg}={ver}",
        "download_bytes": dl_bytes,
        "download_seconds": None if reused else round(t1 - t0, 1),
        "extract_seconds": round(time.time() - t1, 1),
        "modules": len(mods),
    }
    shutil.rmtree(dl)
    with open(os.path.join(d, "EXTRACTED"), "w") as f:
        json.dump(extra, f, indent=1)
    got = dbg_info(ver, release)
    assert got is not None
    log(
        f"-dbg: {dl_bytes >> 20} MB downloaded in {extra['download_seconds']} s (None: reused), vmlinux "
        f"({os.path.getsize(got['vmlinux']) >> 20} MB) + {len(mods)} modules extracted in {extra['extract_seconds']} s"
    )
    return got


def cmd_dbg() -> None:
    if not os.path.exists(MANIFEST):
        raise SystemExit("no stock.json: run python3 lab/stock.py all first")
    lock = L.exclusive(os.path.join(STOCK, ".lock"), "stock.py")
    try:
        m = json.load(open(MANIFEST))
        m["dbg"] = fetch_dbg(m)
        common.write_json(MANIFEST, m)
    finally:
        lock.close()


# --------------------------------------------------------------------------- commands


def cmd_all(force: bool = False) -> None:
    t0 = time.time()
    lock = L.exclusive(os.path.join(STOCK, ".lock"), "stock.py")
    try:
        ensure_host_tools()
        ver, abi = resolve_kernel()
        k = fetch_kernel(ver, abi)
        bdir = build(k)
        failed = common.run_all(
            SCENARIOS, lambda n: not force and scenario_done(ver, n), lambda n: run_scenario(n, k, bdir)
        )
        path = write_manifest(k, bdir)
        prune(k, bdir)
        log(f"manifest {path}; total {time.time() - t0:.1f} s")
        if failed:
            raise SystemExit(f"stock scenarios failed: {', '.join(failed)}")
    finally:
        lock.close()


def cmd_list() -> None:
    print(f"cache: {STOCK}")
    for d in sorted(glob.glob(os.path.join(STOCK, "*", "UNPACKED"))):
        kd = os.path.dirname(d)
        images = glob.glob(os.path.join(kd, "root/boot/vmlinuz-*"))
        print(f"  {os.path.basename(kd)}: {', '.join(os.path.basename(p) for p in images)}")
        for b in sorted(glob.glob(os.path.join(kd, "build", "*", "BUILT"))):
            print(f"    build/{os.path.basename(os.path.dirname(b))}")
    if not os.path.exists(MANIFEST):
        print("nothing built yet: python3 lab/stock.py all")
        return
    m = json.load(open(MANIFEST))
    print(f"current (stock.json): {m['kernel_release']} ({m['package_version']}), build {m['build_key']}")
    print(f"  modules: {' '.join(m['modules'])}")
    dbg = m.get("dbg")
    print(f"  -dbg: {dbg['vmlinux']}" if dbg else "  -dbg: not extracted (python3 lab/stock.py dbg)")
    ver = m["package_version"]
    for name in SCENARIOS:
        s = scenario_meta(ver, name) if m.get("build_key") == build_key(ver) else None
        if s:
            state = "ok" if scenario_done(ver, name) else ("stale" if s.get("ok") else "FAILED")
            print(f"  {name:14} {state:6} {s.get('run_seconds')}s vmcore={s.get('vmcore_bytes')}  {s.get('key_line')}")
        else:
            print(f"  {name:14} missing (sources changed since stock.json: python3 lab/stock.py all)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["all", "list", "dbg"])
    ap.add_argument("--force", action="store_true", help="rerun the scenarios even if cached")
    a = ap.parse_args()
    if a.cmd == "list":
        return cmd_list()
    if a.cmd == "dbg":
        return cmd_dbg()
    cmd_all(a.force)


if __name__ == "__main__":
    sys.exit(main())
