"""Facts about kernels that several parts need: taint letters and distro release naming."""

from __future__ import annotations

import re

# Documentation/admin-guide/tainted-kernels.rst
TAINT_FLAGS: dict[str, str] = {
    "P": "proprietary module loaded",
    "F": "module force-loaded",
    "S": "kernel running on an out-of-spec system (SMP unsafe / CPU out of spec)",
    "R": "module force-unloaded",
    "M": "machine check exception occurred",
    "B": "bad page referenced or unexpected page flags",
    "U": "taint requested by userspace",
    "D": "kernel died recently (OOPS or BUG)",
    "A": "ACPI table overridden by user",
    "W": "kernel issued a warning",
    "C": "staging driver loaded",
    "I": "workaround for a platform firmware bug applied",
    "O": "externally-built (out-of-tree) module loaded",
    "E": "unsigned module loaded",
    "L": "soft lockup occurred",
    "K": "kernel live patched",
    "X": "auxiliary taint (distro-defined)",
    "T": "kernel built with the struct randomization plugin",
    "N": "in-kernel test (e.g. KUnit) run",
    "J": "userspace used a mutating debug operation in fwctl",
}


def decode_taint(flags: str) -> tuple[str, ...]:
    return tuple(f"{c}: {TAINT_FLAGS[c]}" for c in flags if c in TAINT_FLAGS)


_DISTRO_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.el(\d+)(?:_\d+)?"), "el{0}"),
    (re.compile(r"\.fc(\d+)"), "fedora{0}"),
    (re.compile(r"\.amzn(\d+)"), "amzn{0}"),
    (re.compile(r"\.(?:uek|el\d+uek)"), "oracle-uek"),
    (re.compile(r"-(?:generic|lowlatency|aws|azure|gcp|kvm|oracle|ibm)(?:-\S+)?$"), "ubuntu"),
    (re.compile(r"^\d+\.\d+\.\d+-\d+-(?:amd64|arm64|cloud-amd64|cloud-arm64|rt-amd64|686-pae|686)$"), "debian"),
    (re.compile(r"-default$|-azure$"), "suse"),
)


def guess_distro(release: str | None, build: str | None = None) -> str | None:
    """`3.10.0-1160.el7.x86_64` -> el7; `6.1.0-18-amd64` -> debian; `5.15.0-91-generic` -> ubuntu."""
    if not release:
        return None
    for rx, fmt in _DISTRO_RULES:
        m = rx.search(release)
        if m:
            return fmt.format(*m.groups())
    if build:
        if "Ubuntu" in build:
            return "ubuntu"
        if "Debian" in build:
            return "debian"
    return None
