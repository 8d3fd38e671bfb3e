#!/usr/bin/env python3
"""ktriage collect on a real Debian machine with Debian's own kdump-tools: a stock Debian 12 guest (systemd,
linux-image-amd64, kdump-tools, all from Debian's archive by debootstrap) crashes; kdump-tools captures the dump
itself into /var/crash/<stamp>/; the guest reboots into its first kernel, where `ktriage-collect.service` (as
`ktriage collect --install` writes it) finds the dump and leaves its report in the spool. Nothing leaves the
guest over a network (it has none): the results are read out of its disk image with debugfs.

    python3 lab/collect_guest.py all     # build the rootfs (~5 min, once), boot, crash, capture, collect (~10 min)
    python3 lab/collect_guest.py rootfs  # only build/refresh the rootfs
    python3 lab/collect_guest.py boot    # only the boot sequence, on a fresh image of the cached rootfs

Cache: ${KTRIAGE_LAB_CACHE:-~/.cache/ktriage-lab}/collect-guest/ (rootfs/, image.raw, console.log, out/);
`collect-guest.json` there names the results for tests/lab/test_collect_kdump_guest.py.

How the guest crashes: `lab-crash.service` (lab only, runs once: it leaves a flag file first) writes `c` to
/proc/sysrq-trigger after kdump-tools.service loaded the capture kernel. `lab-finish.service` powers the guest
off once a boot finds a dump, after ktriage-collect.service ran; a drop-in records the dump's SHA-256 before
the collector starts, so the test can show the collector left it as kdump-tools wrote it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("KTRIAGE_LAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ktriage-lab")
G = os.path.join(CACHE, "collect-guest")
ROOTFS = os.path.join(G, "rootfs")
IMAGE = os.path.join(G, "image.raw")
CONSOLE = os.path.join(G, "console.log")
OUT = os.path.join(G, "out")
MANIFEST = os.path.join(G, "collect-guest.json")
PACKAGES = "systemd-sysv,udev,kdump-tools,kexec-tools,makedumpfile,linux-image-amd64,initramfs-tools,python3,e2fsprogs,procps,kmod"
BOOT_TIMEOUT = 40 * 60

UNITS = {
    "lab-crash.service": """[Unit]
Description=crash lab: crash once, after kdump-tools loaded the capture kernel
After=kdump-tools.service
Requires=kdump-tools.service
ConditionPathExists=!/var/lib/lab-crashed

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'grep -q 1 /sys/kernel/kexec_crash_loaded || { echo "LAB: no capture kernel loaded"; exit 1; }; touch /var/lib/lab-crashed; sync; echo "LAB: crashing"; echo c > /proc/sysrq-trigger'
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
""",
    "lab-finish.service": """[Unit]
Description=crash lab: power off once the collector ran on a boot that has a dump
After=ktriage-collect.service lab-crash.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'if ls /var/crash/2*/dump.* >/dev/null 2>&1; then echo "LAB: collected, powering off"; systemctl --no-block poweroff; fi'
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
""",
}
COLLECT_DROPIN = """[Service]
# "+": outside the unit's sandbox (ProtectSystem=strict leaves only /var/lib/ktriage writable to the collector)
ExecStartPre=+/bin/sh -c 'sha256sum /var/crash/2*/dump.* > /var/lib/lab-dump-before.sha256 2>/dev/null || true'
StandardOutput=journal+console
StandardError=journal+console
"""
WRAPPER = """#!/bin/sh
PYTHONPATH=/opt/ktriage-site exec python3 -m ktriage.cli "$@"
"""


def log(msg: str) -> None:
    print(f"[collect-guest {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def,type-arg]
    return subprocess.run(cmd, check=True, **kw)


def write(rel: str, text: str, mode: int = 0o644) -> None:
    path = os.path.join(ROOTFS, rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def kernel_version() -> str:
    (vmlinuz,) = glob.glob(os.path.join(ROOTFS, "boot", "vmlinuz-*"))
    return os.path.basename(vmlinuz)[len("vmlinuz-") :]


def build_rootfs() -> None:
    if not os.path.exists(os.path.join(ROOTFS, "usr/sbin/kdump-config")):
        if not shutil.which("debootstrap"):
            sh(["apt-get", "install", "-y", "-q", "debootstrap"])
        log("debootstrap bookworm (Debian's archive): " + PACKAGES)
        shutil.rmtree(ROOTFS, ignore_errors=True)
        sh(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={PACKAGES}",
                "bookworm",
                ROOTFS,
                "http://deb.debian.org/debian",
            ],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    ver = kernel_version()
    write("/etc/fstab", "/dev/vda / ext4 defaults 0 1\n")
    write("/etc/hostname", "ktriage-guest\n")
    # kdump-tools as shipped, switched on; crashkernel= as its grub snippet sets it (this guest boots without grub)
    conf = os.path.join(ROOTFS, "etc/default/kdump-tools")
    text = open(conf).read()
    if "\nUSE_KDUMP=1" not in text:
        write("/etc/default/kdump-tools", text.replace("USE_KDUMP=0", "USE_KDUMP=1") + "\nUSE_KDUMP=1\n")
    # The package's kdump initrd hook chose MODULES=dep, which in a chroot means the *host's* modules: rebuild it
    # from the package's own initramfs copy with MODULES=most, so the capture kernel finds virtio-blk and ext4.
    kd = os.path.join(ROOTFS, "var/lib/kdump")
    dep = os.path.join(kd, "initramfs-tools/conf.d/zzz-kdump")
    if os.path.exists(dep) or not os.path.exists(os.path.join(kd, f"initrd.img-{ver}")):
        if os.path.exists(dep):
            os.unlink(dep)
        if not os.path.isdir(os.path.join(kd, "initramfs-tools")):
            shutil.copytree(os.path.join(ROOTFS, "etc/initramfs-tools"), os.path.join(kd, "initramfs-tools"))
        log("kdump initrd (MODULES=most)")
        sh(
            [
                "chroot",
                ROOTFS,
                "mkinitramfs",
                "-d",
                "/var/lib/kdump/initramfs-tools",
                "-o",
                f"/var/lib/kdump/initrd.img-{ver}",
                ver,
            ]
        )
    # ktriage, installed the way a machine gets it (pip), into /opt/ktriage-site, with a `ktriage` on PATH
    site = os.path.join(ROOTFS, "opt/ktriage-site")
    shutil.rmtree(site, ignore_errors=True)
    log("pip install ktriage into the guest")
    sh(
        [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", site, REPO],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    write("/usr/local/bin/ktriage", WRAPPER, 0o755)
    sh(
        [sys.executable, "-m", "ktriage.cli", "collect", "--install", "--install-root", ROOTFS],
        env={**os.environ, "PYTHONPATH": os.path.join(REPO, "src")},
        stdout=subprocess.DEVNULL,
    )
    for name, text in UNITS.items():
        write(f"/etc/systemd/system/{name}", text)
    write("/etc/systemd/system/ktriage-collect.service.d/lab.conf", COLLECT_DROPIN)
    wants = os.path.join(ROOTFS, "etc/systemd/system/multi-user.target.wants")
    os.makedirs(wants, exist_ok=True)
    for name in ("ktriage-collect.service", *UNITS):
        link = os.path.join(wants, name)
        if not os.path.lexists(link):
            os.symlink(f"/etc/systemd/system/{name}", link)
    # root without a password on the serial console, for debugging a stuck boot by hand
    sh(["chroot", ROOTFS, "passwd", "-d", "root"], stdout=subprocess.DEVNULL)


def make_image() -> None:
    log("ext4 image from the rootfs (mkfs.ext4 -d)")
    for p in (IMAGE, CONSOLE):
        if os.path.exists(p):
            os.unlink(p)
    sh(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", ROOTFS, IMAGE, "4G"])


def boot() -> None:
    ver = kernel_version()
    cmd = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "max,la57=off",
        "-m",
        "2048",
        "-smp",
        "2",
        "-display",
        "none",
        "-monitor",
        "none",
        "-nic",
        "none",
        "-kernel",
        os.path.join(ROOTFS, "boot", f"vmlinuz-{ver}"),
        "-initrd",
        os.path.join(ROOTFS, "boot", f"initrd.img-{ver}"),
        "-append",
        "root=/dev/vda rw console=ttyS0 crashkernel=384M panic=10 systemd.show_status=1",
        "-drive",
        f"file={IMAGE},format=raw,if=virtio",
        "-serial",
        f"file:{CONSOLE}",
    ]  # no -no-reboot: kdump-tools reboots into the first kernel after saving the dump, as on a real machine
    log("boot: first kernel, crash, kdump-tools capture, reboot, collect (QEMU TCG; several minutes)")
    t0 = time.monotonic()
    try:
        subprocess.run(cmd, check=True, timeout=BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        sys.exit(f"the guest did not power off within {BOOT_TIMEOUT}s; see {CONSOLE}")
    log(f"guest powered off after {time.monotonic() - t0:.0f}s")


def read_results() -> dict:
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for src in ("/var/crash", "/var/lib/ktriage"):
        sh(["debugfs", "-R", f"rdump {src} {OUT}", IMAGE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sh(
        ["debugfs", "-R", f"dump /var/lib/lab-dump-before.sha256 {OUT}/dump-before.sha256", IMAGE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    m = {"out": OUT, "console": CONSOLE, "kernel": kernel_version(), "image": IMAGE}
    with open(MANIFEST, "w") as f:
        json.dump(m, f, indent=1)
    log(f"results in {OUT}: " + ", ".join(sorted(os.listdir(OUT))))
    return m


def main() -> int:
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    os.makedirs(G, exist_ok=True)
    if what in ("all", "rootfs"):
        build_rootfs()
    if what == "rootfs":
        return 0
    make_image()
    boot()
    read_results()
    return 0


if __name__ == "__main__":
    sys.exit(main())
