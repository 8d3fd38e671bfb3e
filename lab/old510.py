#!/usr/bin/env python3
"""ktriage crash lab, 5.10 target: Debian 11 (bullseye)'s stock kernel, in-guest kdump vmcores.

    python3 lab/old510.py all [NAME...]  # download + build what is missing, run scenarios without a good run
    python3 lab/old510.py list           # what the 5.10 cache holds

Kernels before 6.0 publish no kallsyms in VMCOREINFO: these dumps prove the symbol sources ktriage uses instead
(System.map, the kernel's own kallsyms tables found in memory) and the no-debug-info tier on 5.10's layouts.

Packages come from Debian's archive through a PRIVATE apt state in the cache (sources.list for bullseye and
bullseye-security, its own lists dir, preferences pinning both at 100): the host's apt never sees them and nothing
is installed. The kernel is whatever bullseye's `linux-image-amd64` points at today (5.10.0-<abi>-amd64). Fetched:
the image (vmlinuz, System.map, modules), headers + kbuild (crashmod built out of tree, with gcc-12: the headers'
gcc-10 is not in bookworm; 5.10 has no module BTF, CONFIG_DEBUG_INFO_BTF_MODULES came in 5.11), the `-dbg`
package (800 MB; its vmlinux without .rela sections, ~8 s download + ~90 s unpack; `--no-dbg` skips it) and the
System.map of the previous ABI's image (a System.map of another build, which ktriage must refuse).

Each scenario boots the stock vmlinuz under QEMU TCG with a busybox initramfs (lab/old510-init.sh): stock
modules + crashmod, `kexec -p` of the same vmlinuz as capture kernel, the crash; the capture kernel runs
`makedumpfile -F -c -d 31 /proc/vmcore` onto a raw virtio disk, the host reassembles it with `makedumpfile -R`.

Cache: ${KTRIAGE_LAB_CACHE:-~/.cache/ktriage-lab}/old510/ (its own flock, old510/.lock: it never waits on
lab.py or stock.py); `old510.json` in the cache root names the current set (tests/lab/test_old510.py reads it).
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
TOP = os.path.join(CACHE, "old510")
MANIFEST = os.path.join(CACHE, "old510.json")
META_PKG = "linux-image-amd64"
SUITES = ["bullseye", "bullseye-security"]

_spec = importlib.util.spec_from_file_location("ktriage_lab", os.path.join(LAB, "lab.py"))
L = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(L)  # type: ignore[union-attr]
log, sh, sha = L.log, L.sh, L.sha

# first kernel: conntrack (crashmod's netfilter-udp enables it); capture kernel: the raw virtio disk
MAIN_MODULES = ["nf_conntrack"]
CAPTURE_MODULES = ["virtio_pci", "virtio_blk"]
BUILD_INPUTS = [os.path.join(LAB, p) for p in ("crashmod/crashmod.c", "crashmod/Kbuild", "old510-init.sh", "udpsend.c")]

BOOT_ARGS = "console=ttyS0 loglevel=7 oops=panic slab_nomerge crashkernel=192M panic=5"
QEMU = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max,la57=off", "-m", "768", "-smp", "2"]
QEMU += ["-display", "none", "-no-reboot", "-monitor", "none", "-nic", "none"]
# uaf-poison needs `slub_debug=` on 5.10: SLUB's debug paths (poison on free, red zones, owner tracking) sit behind the
# static key slub_debug_enabled, and on this kernel only the boot parameter turns it on (setup_slub_debug is the one
# writer of the key in the -dbg vmlinux). A cache created with SLAB_POISON | SLAB_RED_ZONE | SLAB_STORE_USER keeps the
# flags (0x80010c00) but is freed through the fast path: no poison, the free pointer past the object (its offset is
# laid out for SLAB_POISON), so obj->ops still holds the valid ops and the second dispatch returns. Kernels with
# 1f0723a4c0df ("mm, slub: enable slub_debug static key when creating cache with explicit debug flags", v5.14) turn
# the key on at kmem_cache_create(). `PZU,crashmod_obj` asks for exactly the module's flags on its cache alone.
SCENARIOS: dict[str, dict] = {
    "null-member": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a30"},
    "netfilter-udp": {"args": "", "expect": r"BUG: kernel NULL pointer dereference, address: 0000000000000a38"},
    "uaf-poison": {
        "args": "slub_debug=PZU,crashmod_obj",
        "expect": r"general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b",
    },
    "hung-task": {
        "args": "sysctl.kernel.hung_task_timeout_secs=5 hung_task_panic=1",
        "expect": r"INFO: task \S+ blocked for more than \d+ seconds",
    },
    "deadlock": {
        "args": "sysctl.kernel.hung_task_timeout_secs=5 hung_task_panic=1",
        "expect": r"INFO: task crashmod_[ab]:\d+ blocked for more than \d+ seconds",
    },
}


# --------------------------------------------------------------------------- private apt state


def apt_opts() -> list[str]:
    a = os.path.join(TOP, "apt")
    return [
        f"-oDir::Etc::sourcelist={a}/sources.list",
        f"-oDir::Etc::sourceparts={a}/parts",
        f"-oDir::Etc::preferences={a}/preferences",
        f"-oDir::Etc::preferencesparts={a}/parts",
        f"-oDir::State::Lists={a}/lists",
        f"-oDir::Cache={a}/cache",
        "-oAPT::Sandbox::User=root",
    ]


def apt_setup(refresh: bool = False) -> None:
    a = os.path.join(TOP, "apt")
    for d in ("parts", "lists/partial", "cache/archives/partial"):
        os.makedirs(os.path.join(a, d), exist_ok=True)
    key = "/usr/share/keyrings/debian-archive-keyring.gpg"
    with open(os.path.join(a, "sources.list"), "w") as f:
        f.write(f"deb [signed-by={key}] http://deb.debian.org/debian bullseye main\n")
        f.write(f"deb [signed-by={key}] http://deb.debian.org/debian-security bullseye-security main\n")
    with open(os.path.join(a, "preferences"), "w") as f:  # pinned low: never an upgrade candidate
        f.write("\n".join(f"Package: *\nPin: release n={s}\nPin-Priority: 100\n" for s in SUITES))
    if refresh or not glob.glob(os.path.join(a, "lists", "*Packages*")):
        sh(["apt-get", *apt_opts(), "update", "-qq"])


def apt_cache(*args: str) -> str:
    return subprocess.run(["apt-cache", *apt_opts(), *args], capture_output=True, text=True).stdout


def resolve_kernel() -> tuple[str, str, str | None]:
    """(package version, ABI such as 5.10.0-46, previous ABI's image package) that bullseye selects today."""
    for attempt in (0, 1):
        apt_setup(refresh=attempt == 1)
        m = re.search(r"Candidate:\s*(\S+)", apt_cache("policy", META_PKG))
        if m and m.group(1) != "(none)":
            ver = m.group(1)
            a = re.search(r"Depends: linux-image-(5\.10\.0-\d+)-amd64\b", apt_cache("depends", f"{META_PKG}={ver}"))
            if a:
                abi = a.group(1)
                n = int(abi.rsplit("-", 1)[1])
                names = apt_cache("pkgnames", "linux-image-5.10.0-").split()
                older = sorted(
                    int(x.group(1))
                    for x in (re.fullmatch(r"linux-image-5\.10\.0-(\d+)-amd64", p) for p in names)
                    if x and int(x.group(1)) < n
                )
                other = f"linux-image-5.10.0-{older[-1]}-amd64" if older else None
                return ver, abi, other
    raise SystemExit(f"cannot resolve bullseye's {META_PKG} (private apt state in {TOP}/apt)")


def download(pkgs: list[str], dest: str) -> int:
    os.makedirs(dest, exist_ok=True)
    sh(["apt-get", *apt_opts(), "download", *pkgs], cwd=dest, stderr=subprocess.DEVNULL)
    return sum(os.path.getsize(d) for d in glob.glob(os.path.join(dest, "*.deb")))


# --------------------------------------------------------------------------- kernel packages


def fetch_kernel(ver: str, abi: str, other: str | None, dbg: bool) -> dict:
    kdir = os.path.join(TOP, ver)
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
        # the real System.map (from -dbg); /boot/System.map-* of the image package is Debian's placeholder
        "system_map": os.path.join(kdir, "dbg", f"System.map-{release}") if dbg else None,
        "system_map_placeholder": os.path.join(root, "boot", f"System.map-{release}"),
        "module_dir": os.path.join(root, "lib/modules", release),
        "vmlinux_dbg": os.path.join(kdir, "dbg", f"vmlinux-{release}") if dbg else None,
        "other_system_map": None,
    }
    stamp = os.path.join(kdir, "UNPACKED")
    if not os.path.exists(stamp):
        t0 = time.time()
        dl = os.path.join(kdir, "dl")
        shutil.rmtree(root, ignore_errors=True)
        pkgs = [
            f"linux-image-{release}",
            f"linux-headers-{release}",
            f"linux-headers-{abi}-common",
            "linux-kbuild-5.10",
        ]
        log(f"5.10 kernel {release} ({ver}): downloading {', '.join(pkgs)}")
        nbytes = download([f"{p}={ver}" for p in pkgs], dl)
        for deb in sorted(glob.glob(os.path.join(dl, "*.deb"))):
            sh(["dpkg", "-x", deb, root], quiet=True)
        shutil.rmtree(dl)
        mk = os.path.join(hdr, "Makefile")  # the headers' Makefile includes -common by its installed path
        text = open(mk).read()
        open(mk, "w").write(text.replace("/usr/src/", os.path.join(root, "usr/src") + "/"))
        sh(["depmod", "-b", root, release], quiet=True)
        with open(stamp, "w") as f:
            json.dump({"download_bytes": nbytes, "fetch_seconds": round(time.time() - t0, 1)}, f)
        log(f"5.10 kernel: {nbytes >> 20} MB in {time.time() - t0:.1f} s")
    if other:
        # Debian's /boot/System.map-* is a one-line placeholder ("The real System.map is in the
        # linux-image-<version>-dbg package"): the other build's real one is taken from its -dbg, whose tar stream
        # holds it before the vmlinux, so tar stops after a few MB of the 800 MB package
        odir = os.path.join(TOP, "other", other)
        maps = glob.glob(os.path.join(odir, "System.map-*"))
        if not maps:
            log(f"System.map of another build: {other}-dbg")
            download([f"{other}-dbg"], os.path.join(odir, "dl"))
            deb = glob.glob(os.path.join(odir, "dl", "*.deb"))[0]
            name = re.sub(r"^linux-image-", "System.map-", other)
            cmd = (
                f"dpkg-deb --fsys-tarfile {deb} | tar -xO --occurrence=1 --wildcards "
                f"'./usr/lib/debug/boot/System.map-*' > {odir}/{name}.tmp"
            )
            subprocess.run(["bash", "-c", cmd], stderr=subprocess.DEVNULL)  # the pipe breaks upstream: expected
            os.replace(os.path.join(odir, name + ".tmp"), os.path.join(odir, name))
            shutil.rmtree(os.path.join(odir, "dl"))
            maps = glob.glob(os.path.join(odir, "System.map-*"))
        info["other_system_map"] = maps[0]
    if dbg and not os.path.exists(os.path.join(kdir, "dbg", "DONE")):
        t0 = time.time()
        ddir = os.path.join(kdir, "dbg")
        log(f"-dbg of {release}: downloading (about 800 MB)")
        nbytes = download([f"linux-image-{release}-dbg={ver}"], ddir)
        deb = glob.glob(os.path.join(ddir, "*.deb"))[0]
        t1 = time.time()
        # both files come first in the package's tar stream: --occurrence stops tar (and xz) after them instead of
        # decompressing the 5 GB of module debug files behind (the broken pipe upstream is expected)
        want = " ".join(f"./usr/lib/debug/boot/{f}-{release}" for f in ("System.map", "vmlinux"))
        cmd = f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {ddir} --occurrence=1 {want}"
        subprocess.run(["bash", "-c", cmd], stderr=subprocess.DEVNULL)
        full = os.path.join(ddir, "usr/lib/debug/boot", f"vmlinux-{release}")
        if not os.path.exists(full):
            raise SystemExit(f"no vmlinux-{release} in {deb}")
        os.replace(os.path.join(ddir, "usr/lib/debug/boot", f"System.map-{release}"), info["system_map"])
        # .rela.* is half the file and nobody reads it (drgn and crash read the rest identically)
        sh(["objcopy", "--remove-section=.rela.*", full, info["vmlinux_dbg"]], quiet=True)
        shutil.rmtree(os.path.join(ddir, "usr"))
        os.unlink(deb)
        with open(os.path.join(ddir, "DONE"), "w") as f:
            json.dump(
                {
                    "download_bytes": nbytes,
                    "download_seconds": round(t1 - t0, 1),
                    "unpack_seconds": round(time.time() - t1, 1),
                },
                f,
            )
        log(f"-dbg: {nbytes >> 20} MB downloaded in {t1 - t0:.1f} s, vmlinux unpacked in {time.time() - t1:.1f} s")
    return dict(info, **json.load(open(stamp)))


# --------------------------------------------------------------------------- crashmod + initramfs


def build_key() -> str:
    return sha(*BUILD_INPUTS, extra=" ".join(MAIN_MODULES + CAPTURE_MODULES + ["gcc-12"]))


def module_deps(k: dict, names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        r = subprocess.run(
            ["modprobe", "-d", k["root"], "-S", k["release"], "--show-depends", name], capture_output=True, text=True
        )
        if r.returncode:
            raise SystemExit(f"modprobe --show-depends {name}: {r.stderr.strip()}")
        for line in r.stdout.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod" and parts[1] not in out:
                out.append(parts[1])
    return out


def initramfs(k: dict, bdir: str, name: str, modules: list[str], extra: dict[str, str], binaries: list[str]) -> str:
    root = os.path.join(bdir, name + "-root")
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "boot", "lib/modules"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(L.busybox_path(), os.path.join(root, "bin/busybox"))
    shutil.copy(os.path.join(LAB, "old510-init.sh"), os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o755)
    for b in binaries:  # host binaries with their shared libraries
        path = shutil.which(b) or f"/usr/sbin/{b}"
        shutil.copy(path, os.path.join(root, "bin", b))
        for lib in L.ldd_libs(path):
            dst = os.path.join(root, lib.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(lib, dst)
    with open(os.path.join(root, "lib/modules/load.list"), "w") as f:
        for path in module_deps(k, modules):
            shutil.copy(path, os.path.join(root, "lib/modules", os.path.basename(path)))
            f.write(os.path.basename(path) + "\n")
    for dst, src in extra.items():
        shutil.copy(src, os.path.join(root, dst))
    out = os.path.join(bdir, name + ".cpio.gz")
    L.make_cpio(root, out)
    shutil.rmtree(root)
    return out


def build(k: dict) -> str:
    bdir = os.path.join(TOP, k["version"], "build", build_key())
    stamp = os.path.join(bdir, "BUILT")
    if os.path.exists(stamp):
        log(f"crashmod + initramfs {os.path.basename(bdir)}: cached")
        return bdir
    t0 = time.time()
    shutil.rmtree(bdir, ignore_errors=True)
    mdir = os.path.join(bdir, "crashmod")
    os.makedirs(mdir)
    for f in ("crashmod.c", "Kbuild"):
        shutil.copy(os.path.join(LAB, "crashmod", f), mdir)
    # the headers name gcc-10 (bullseye's); bookworm's gcc-12 builds the module (same ABI, one warning-free build)
    sh(["make", "-C", k["headers"], "CC=gcc-12", f"M={mdir}", "modules"], stdout=subprocess.DEVNULL)
    ko = os.path.join(bdir, "crashmod.ko")
    shutil.copy(os.path.join(mdir, "crashmod.ko"), ko)
    udpsend = os.path.join(bdir, "udpsend")
    sh(["gcc", "-O2", "-static", "-o", udpsend, os.path.join(LAB, "udpsend.c")], quiet=True, stderr=subprocess.DEVNULL)
    cap = initramfs(k, bdir, "capture", CAPTURE_MODULES, {}, ["makedumpfile"])
    extra = {
        "lib/modules/crashmod.ko": ko,
        "bin/udpsend": udpsend,
        "boot/vmlinuz": k["vmlinuz"],
        "boot/capture.cpio.gz": cap,
    }
    initramfs(k, bdir, "initrd", MAIN_MODULES, extra, ["kexec"])
    with open(stamp, "w") as f:
        json.dump({"key": os.path.basename(bdir), "build_seconds": round(time.time() - t0, 1)}, f)
    log(f"crashmod + initramfs (first + capture kernel) built in {time.time() - t0:.1f} s")
    return bdir


# --------------------------------------------------------------------------- scenarios


def spec_hash(name: str) -> str:
    return common.spec_hash(BOOT_ARGS, QEMU, SCENARIOS[name])


def runs_dir(k: dict) -> str:
    return os.path.join(TOP, k["version"], "runs", build_key())


def run_scenario(name: str, k: dict, bdir: str, timeout: float = 420) -> dict:
    spec = SCENARIOS[name]
    sdir = os.path.join(runs_dir(k), name)
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(sdir)
    console = os.path.join(sdir, "console.log")
    disk = os.path.join(sdir, "disk.img")
    vmcore = os.path.join(sdir, "vmcore")
    sh(["truncate", "-s", "256M", disk], quiet=True)
    append = f"{BOOT_ARGS} {spec['args']} lab.action={name}".replace("  ", " ")
    meta = {
        "scenario": name,
        "spec": spec_hash(name),
        "cmdline": append,
        "release": k["release"],
        "version": k["version"],
    }
    log(f"{name}: booting {k['release']} (TCG, in-guest kdump)")
    t0 = time.time()
    cmd = QEMU + ["-kernel", k["vmlinuz"], "-initrd", os.path.join(bdir, "initrd.cpio.gz"), "-append", append]
    cmd += ["-drive", f"file={disk},format=raw,if=virtio", "-serial", f"file:{console}"]
    try:
        subprocess.run(cmd, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        meta["timed_out"] = False
    except subprocess.TimeoutExpired:
        meta["timed_out"] = True
    meta["kdump_seconds"] = round(time.time() - t0, 1)
    with open(disk, "rb") as src:  # the flattened stream ends with its own end marker; zeros after it are ignored
        subprocess.run(["makedumpfile", "-R", vmcore], stdin=src, capture_output=True)
    os.unlink(disk)
    text = open(console, "rb").read().decode("utf-8", "replace")
    m = re.search(spec["expect"], text)
    meta["key_line"] = m.group(0) if m else None
    meta["vmcore"] = os.path.exists(vmcore) and os.path.getsize(vmcore) > 0
    meta["vmcore_bytes"] = os.path.getsize(vmcore) if meta["vmcore"] else 0
    if meta["vmcore"]:
        with open(vmcore, "rb") as f:
            head = f.read(8)
        meta["vmcore_format"] = "kdump-compressed (makedumpfile -c -d 31)" if head == b"KDUMP   " else "unknown"
    meta["ok"] = bool(meta["key_line"] and meta.get("vmcore_format", "").startswith("kdump"))
    with open(os.path.join(sdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log(
        f"{name}: {'OK' if meta['ok'] else 'FAILED'} in {meta['kdump_seconds']} s; key line: {meta['key_line']!r}; "
        f"vmcore {meta['vmcore_bytes'] >> 20} MB"
    )
    return meta


def scenario_done(k: dict, name: str) -> bool:
    return common.run_done(runs_dir(k), name, spec_hash(name))


def write_manifest(k: dict, bdir: str) -> str:
    scen = common.manifest_scenarios(runs_dir(k), SCENARIOS)
    manifest = {
        "kernel_release": k["release"],
        "package_version": k["version"],
        "abi": k["abi"],
        "vmlinuz": k["vmlinuz"],
        "system_map": k["system_map"] if k["system_map"] and os.path.exists(k["system_map"]) else None,
        "system_map_placeholder": k["system_map_placeholder"],
        "other_system_map": k["other_system_map"],
        "vmlinux_dbg": k["vmlinux_dbg"] if k["vmlinux_dbg"] and os.path.exists(k["vmlinux_dbg"]) else None,
        "module_dir": k["module_dir"],
        "build_key": os.path.basename(bdir),
        "crashmod_ko": os.path.join(bdir, "crashmod.ko"),
        "scenarios": scen,
    }
    return common.write_json(MANIFEST, manifest)


# --------------------------------------------------------------------------- commands


def cmd_all(names: list[str], force: bool, dbg: bool) -> None:
    t0 = time.time()
    os.makedirs(TOP, exist_ok=True)
    lock = L.exclusive(os.path.join(TOP, ".lock"), "old510.py")
    try:
        for tool, pkg in {
            "qemu-system-x86_64": "qemu-system-x86",
            "kexec": "kexec-tools",
            "makedumpfile": "makedumpfile",
            "gcc-12": "gcc-12",
        }.items():
            if not shutil.which(tool) and not os.path.exists("/sbin/" + tool):
                raise SystemExit(f"{tool} missing: apt-get install {pkg} (or run python3 lab/lab.py build first)")
        ver, abi, other = resolve_kernel()
        k = fetch_kernel(ver, abi, other, dbg)
        bdir = build(k)
        for n in names:
            if n not in SCENARIOS:
                raise SystemExit(f"unknown scenario {n}; known: {', '.join(SCENARIOS)}")
        failed = common.run_all(
            names or list(SCENARIOS), lambda n: not force and scenario_done(k, n), lambda n: run_scenario(n, k, bdir)
        )
        path = write_manifest(k, bdir)
        log(f"manifest {path}; total {time.time() - t0:.1f} s")
        if failed:
            raise SystemExit(f"5.10 scenarios failed: {', '.join(failed)}")
    finally:
        lock.close()


def cmd_list() -> None:
    if not os.path.exists(MANIFEST):
        print("nothing built yet: python3 lab/old510.py all")
        return
    m = json.load(open(MANIFEST))
    print(f"current (old510.json): {m['kernel_release']} ({m['package_version']}), build {m['build_key']}")
    print(f"  -dbg vmlinux: {m['vmlinux_dbg'] or 'not downloaded'}; other build's System.map: {m['other_system_map']}")
    for name, s in m["scenarios"].items():
        print(
            f"  {name:14} {'ok' if s.get('ok') else 'FAILED':6} {s.get('kdump_seconds')}s vmcore={s.get('vmcore_bytes')}  {s.get('key_line')}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["all", "list"])
    ap.add_argument("scenarios", nargs="*", help="only these scenarios (default: all)")
    ap.add_argument("--force", action="store_true", help="rerun the scenarios even if cached")
    ap.add_argument("--no-dbg", action="store_true", help="skip the 800 MB -dbg package (no DWARF tier, no crash)")
    a = ap.parse_args()
    if a.cmd == "list":
        return cmd_list()
    cmd_all(a.scenarios, a.force, not a.no_dbg)


if __name__ == "__main__":
    sys.exit(main())
