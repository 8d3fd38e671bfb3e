"""Version orderings a user can trust: upstream kernel releases, RPM (rpmvercmp), Debian (dpkg).

Each compare function returns -1, 0 or 1 like C's strcmp. The RPM and Debian algorithms are
line-by-line ports of rpm's `rpmvercmp()` (lib/rpmvercmp.c) and dpkg's `verrevcmp()`
(lib/dpkg/version.c), including their tilde (`~` sorts before everything, even the end) and
caret (`^` sorts after the end but before anything else) rules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------- RPM


def _isalnum(c: str) -> bool:  # rpm's risalnum: ASCII only
    return ("0" <= c <= "9") or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _isalpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def rpmvercmp(a: str, b: str) -> int:
    """RPM's version segment comparison (one of epoch/version/release), as rpm 4.15+ does it."""
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)

    def at(s: str, k: int) -> str:
        return s[k] if k < len(s) else ""

    while i < la or j < lb:
        while i < la and not _isalnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < lb and not _isalnum(b[j]) and b[j] not in "~^":
            j += 1
        ca, cb = at(a, i), at(b, j)
        # tilde sorts before everything else, even the end of the string
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i += 1
            j += 1
            continue
        # caret sorts after the end of the string but before anything else
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ca and cb):
            break
        si, sj = i, j
        if _isdigit(ca):
            while si < la and _isdigit(a[si]):
                si += 1
            while sj < lb and _isdigit(b[sj]):
                sj += 1
            isnum = True
        else:
            while si < la and _isalpha(a[si]):
                si += 1
            while sj < lb and _isalpha(b[sj]):
                sj += 1
            isnum = False
        seg_a, seg_b = a[i:si], b[j:sj]
        if not seg_a:
            return -1  # cannot happen: ca is alphanumeric
        if not seg_b:
            return 1 if isnum else -1  # numeric segments are newer than alpha ones
        if isnum:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return -1 if seg_a < seg_b else 1
        i, j = si, sj
    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


_ARCHES = ("x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "i686", "i386", "noarch", "armv7hl")


def split_nvr(s: str) -> tuple[str, str, str]:
    """`[epoch:]version-release[.arch]` (a kernel uname -r or an RPM EVR) -> (epoch, version, release)."""
    s = s.strip()
    for arch in _ARCHES:
        if s.endswith("." + arch):
            s = s[: -len(arch) - 1]
            break
    s = re.sub(r"\+debug$", "", s)
    epoch = "0"
    if ":" in s:
        epoch, s = s.split(":", 1)
    version, _, release = s.partition("-")
    return epoch or "0", version, release


def rpm_evr_cmp(a: str, b: str) -> int:
    """Compare two `[epoch:]version-release` strings (arch suffixes ignored), as rpm does."""
    ea, va, ra = split_nvr(a)
    eb, vb, rb = split_nvr(b)
    return rpmvercmp(ea, eb) or rpmvercmp(va, vb) or rpmvercmp(ra, rb)


# ------------------------------------------------------------------------------------- Debian


def _order(c: str) -> int:
    if not c or _isdigit(c):
        return 0
    if _isalpha(c):
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and not _isdigit(a[i])) or (j < lb and not _isdigit(b[j])):
            ac = _order(a[i] if i < la else "")
            bc = _order(b[j] if j < lb else "")
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        while i < la and j < lb and _isdigit(a[i]) and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and _isdigit(a[i]):
            return 1
        if j < lb and _isdigit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


_DEB_VERSION = re.compile(r"^(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")


def parse_deb(v: str) -> tuple[int, str, str]:
    """`[epoch:]upstream[-revision]` -> (epoch, upstream, revision). Raises ValueError if malformed."""
    v = v.strip()
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        if not e.isdigit():
            raise ValueError(f"bad Debian version epoch {e!r}")
        epoch = int(e)
    upstream, sep, revision = v.rpartition("-")
    if not sep:
        upstream, revision = v, ""
    if not upstream or not _isdigit(upstream[0]):
        raise ValueError(f"Debian version {v!r} does not start with a digit")
    return epoch, upstream, revision


def debvercmp(a: str, b: str) -> int:
    """dpkg --compare-versions ordering: epoch, then upstream, then revision."""
    ea, ua, ra = parse_deb(a)
    eb, ub, rb = parse_deb(b)
    if ea != eb:
        return -1 if ea < eb else 1
    r = _verrevcmp(ua, ub) or _verrevcmp(ra, rb)
    return (r > 0) - (r < 0)


# ----------------------------------------------------------------------------------- upstream

_UPSTREAM = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?")


@dataclass(frozen=True, order=True)
class KVer:
    """An upstream kernel version: 5.10.120, 5.19, 6.6-rc3 (an -rc sorts before its release)."""

    major: int
    minor: int
    patch: int = 0
    rc: float = math.inf  # inf = a final release

    @property
    def is_rc(self) -> bool:
        return self.rc != math.inf

    @property
    def branch(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        s = f"{self.major}.{self.minor}"
        if self.patch:
            s += f".{self.patch}"
        if self.is_rc:
            s += f"-rc{int(self.rc)}"
        return s


def parse_kver(s: str | None) -> KVer | None:
    """The upstream version at the start of a string: `5.10.120`, `6.6.0-rc3-syzkaller-...`, `v5.19`."""
    if not s:
        return None
    m = _UPSTREAM.match(s.strip())
    if not m:
        return None
    return KVer(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), float(m.group(4)) if m.group(4) else math.inf)


def kvercmp(a: str, b: str) -> int:
    ka, kb = parse_kver(a), parse_kver(b)
    if ka is None or kb is None:
        raise ValueError(f"not a kernel version: {a if ka is None else b!r}")
    return (ka > kb) - (ka < kb)


# ------------------------------------------------------------------------- running kernels

# localversion markers of vendor kernels whose base version says little about their fixes
_VENDOR_MARKERS = re.compile(
    r"(?:^|[-.+_])(?:el\d+|fc\d+|amzn\d+|uek|android\d*|default|azure|aws|gcp|oracle|"
    r"generic|lowlatency|amd64|arm64|cloud|rt|pve|qcom|raspi|tegra|vendor)(?:[-.+_]|$)"
)
_DISTRO_ABI = re.compile(r"^-\d+(?:\.\d+)*-[A-Za-z]")  # 5.10.0-1057-oem, 5.7.0-3-MANJARO: a packager's build
_GIT_DESCRIBE = re.compile(r"^-\d+-g[0-9a-f]{7,}")  # 6.0.0-rc4-00133-g64ae13ed4784: upstream git
_DEB_BUILD = re.compile(r"\bDebian (\d[\w.+~:-]*)")
_UBU_BUILD = re.compile(r"#(\d+)(?:~[\w.]+)?-Ubuntu\b")
_UBU_RELEASE = re.compile(r"^(\d+\.\d+\.\d+)-(\d+)(?:\.\d+)?-[a-z]")


@dataclass(frozen=True)
class RunningKernel:
    """What a crash says about its kernel, in the terms the version logic needs."""

    release: str
    family: str  # upstream, el, debian, ubuntu, vendor, unknown
    distro: str | None = None  # el7, debian, ubuntu, ...
    upstream: KVer | None = None  # the upstream base (for distro kernels: only the base)
    package: str | None = None  # Debian/Ubuntu package version when the build string gives it
    ubuntu_abi: tuple[str, int] | None = None  # ("5.15.0", 91) from 5.15.0-91-generic
    snapshot: bool = False  # a git build between releases (6.15.0-10402-g4cb6c8af8591, -next-, +, -dirty)


def running_kernel(release: str | None, build: str | None = None, distro: str | None = None) -> RunningKernel | None:
    if not release:
        return None
    release = release.strip()
    from ktriage.kernel_info import guess_distro

    distro = distro or guess_distro(release, build)
    base = parse_kver(release)
    if distro and re.fullmatch(r"el\d+", distro):
        return RunningKernel(release, "el", distro, base)
    build = build or ""
    if distro == "debian" or (distro is None and "Debian" in build):
        m = _DEB_BUILD.search(build)
        return RunningKernel(release, "debian", "debian", base, m.group(1) if m else None)
    if distro == "ubuntu" or (distro is None and "-Ubuntu" in build):
        m = _UBU_RELEASE.match(release)
        abi = (m.group(1), int(m.group(2))) if m else None
        b = _UBU_BUILD.search(build)
        pkg = f"{abi[0]}-{abi[1]}.{b.group(1)}" if abi and b else None
        return RunningKernel(release, "ubuntu", "ubuntu", base, pkg, abi)
    if distro:
        return RunningKernel(release, "vendor", distro, base)
    if base is None:
        return RunningKernel(release, "unknown")
    rest = release[_UPSTREAM.match(release).end() :]  # type: ignore[union-attr]
    if _VENDOR_MARKERS.search(rest) or (_DISTRO_ABI.match(rest) and not _GIT_DESCRIBE.match(rest)):
        return RunningKernel(release, "vendor", None, base)
    return RunningKernel(release, "upstream", None, base, snapshot=bool(_SNAPSHOT.search(rest)))


_SNAPSHOT = re.compile(r"-\d+-g[0-9a-f]{7,}|-g[0-9a-f]{7,}|-next-\d{8}|\+|-dirty")


def may_be_next_cycle(v: KVer, target: KVer) -> bool:
    """Whether a git snapshot taken after release `v` may already hold commits of `target`'s cycle
    (6.15.0-10402-g... is in the 6.16 merge window: before 6.16-rc1 by number, but not by content)."""
    if v.is_rc or v.patch:
        return False
    return target.branch in ((v.major, v.minor + 1), (v.major + 1, 0))
