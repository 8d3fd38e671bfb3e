"""Ask the distro: its kernel package's changelog lists the fixes it backported, by subject and CVE id.

Why: a distro kernel keeps its upstream version (RHEL 8 stays 4.18.0) while backporting thousands of
fixes, so the version says nothing; the changelog of the build does. Two formats:

  RPM, as `rpm -q --changelog kernel-core` prints it (newest first):
      * Tue Jun 14 2022 Patrick Talbert <ptalbert@redhat.com> [4.18.0-399.el8]
      - netfilter: conntrack: re-fetch conntrack after insertion (Florian Westphal) [2088721]
  Debian's changelog.Debian.gz (newest first):
      linux (6.1.76-1) bookworm-security; urgency=high
        * netfilter: nf_tables: ... (CVE-2024-1085)
       -- Salvatore Bonaccorso <carnil@debian.org>  Thu, 01 Feb 2024 10:40:13 +0100

The changelog of a build lists everything up to that build, so a fix it does not list is "not listed up
to this build", which is evidence of absence only as far as the packager wrote every fix down.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from typing import Any

MAX_CHANGELOG = 64 << 20  # RHEL 8's kernel changelog is ~10 MB; refuse absurd inputs

_RPM_HEAD = re.compile(r"^\* (?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \w{3} +\d+ \d{4} (.*)$")
_RPM_VERSION = re.compile(r"\[([0-9][\w.:~^+-]*)\]\s*$|\s-\s*([0-9][\w.:~^+-]*)\s*$|>\s+([0-9][\w.:~^+-]*)\s*$")
_DEB_HEAD = re.compile(r"^([a-z0-9][a-z0-9.+-]+) \(([^)\s]+)\) [^;]*;")
_SPACE = re.compile(r"\s+")


class ChangelogError(ValueError):
    """The file is not a changelog ktriage can read (one line, for the user)."""


@dataclass
class Entry:
    version: str
    text: str  # whitespace-normalized, lower case: wrapped subjects become one line


@dataclass
class Changelog:
    path: str
    kind: str  # rpm, debian
    package: str = ""
    entries: list[Entry] = field(default_factory=list)

    @property
    def build(self) -> str:
        return self.entries[0].version if self.entries else "?"

    def label(self) -> str:
        if self.kind == "rpm":
            return f"the changelog of kernel-{self.build}"
        return f"the changelog of {self.package or 'linux'} {self.build}"


@dataclass(frozen=True)
class Hit:
    answer: str  # yes (listed), unknown (not listed)
    text: str
    version: str = ""  # the changelog entry that lists it


def _norm(s: str) -> str:
    return _SPACE.sub(" ", s).strip().lower()


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CHANGELOG + 1)
    except OSError as e:
        raise ChangelogError(f"{path}: cannot read: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ChangelogError(f"{path}: damaged gzip file: {e}") from None
    if len(raw) > MAX_CHANGELOG:
        raise ChangelogError(f"{path}: larger than {MAX_CHANGELOG >> 20} MiB, not a kernel changelog")
    return raw.decode("utf-8", "replace")


def parse_changelog(text: str, path: str = "-") -> Changelog:
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if _DEB_HEAD.match(first):
        return _parse(lines, path, "debian")
    if _RPM_HEAD.match(first):
        return _parse(lines, path, "rpm")
    raise ChangelogError(
        f"{path}: not an RPM changelog (`rpm -q --changelog kernel`) or a Debian changelog (changelog.Debian.gz)"
    )


def _parse(lines: list[str], path: str, kind: str) -> Changelog:
    cl = Changelog(path, kind)
    cur: list[str] = []
    version = ""

    def close() -> None:
        if version:
            cl.entries.append(Entry(version, _norm(" ".join(cur))))

    for ln in lines:
        if kind == "debian":
            m = _DEB_HEAD.match(ln)
            if m:
                close()
                cl.package = cl.package or m.group(1)
                version, cur = m.group(2), []
                continue
        else:
            m = _RPM_HEAD.match(ln)
            if m:
                close()
                v = _RPM_VERSION.search(m.group(1))
                version, cur = (next(g for g in v.groups() if g) if v else m.group(1).strip()), []
                continue
        cur.append(ln)
    close()
    if not cl.entries:
        raise ChangelogError(f"{path}: no changelog entries found")
    return cl


def read_changelog(path: str) -> Changelog:
    return parse_changelog(read_text(path), path)


def find_fix(cl: Changelog, subject: str, cves: list[str]) -> Hit:
    """Whether the changelog lists the fix (its subject, or one of its CVE ids), and in which entry."""
    subj = _norm(subject)
    ids = [c.lower() for c in cves]
    for e in cl.entries:
        by = "subject" if subj and subj in e.text else next((c for c in ids if c in e.text), "")
        if by:
            what = f"'{subject}'" + (f" ({', '.join(cves)})" if cves else "")
            if by != "subject":
                what = f"{by.upper()} (fix: '{subject}')"
            where = "" if e is cl.entries[0] else f", in the entry for {e.version}"
            return Hit("yes", f"fixed in this build: {cl.label()} lists {what}{where}", e.version)
    oldest = cl.entries[-1].version
    return Hit(
        "unknown",
        f"not listed up to this build: {cl.label()} ({len(cl.entries)} entries back to {oldest}) names "
        f"neither '{subject}' nor {', '.join(cves) or 'a CVE id'}",
    )


def installed_changelog(release: str, root: str = "/") -> Changelog | None:
    """The changelog of the installed package of this kernel release, on this machine (None if none)."""
    import shutil
    import subprocess

    for name in (f"linux-image-{release}", f"linux-image-{release}-unsigned"):
        for fn in ("changelog.Debian.gz", "changelog.gz"):
            p = os.path.join(root, "usr/share/doc", name, fn)
            if os.path.isfile(p):
                try:
                    return read_changelog(p)
                except ChangelogError:
                    return None
    rpm = shutil.which("rpm")
    if rpm and root == "/":
        for pkg in (f"kernel-core-{release}", f"kernel-{release}"):
            try:
                out = subprocess.run(
                    [rpm, "-q", "--changelog", pkg], capture_output=True, text=True, timeout=30, check=False
                )
            except (OSError, subprocess.SubprocessError):
                return None
            if out.returncode == 0 and out.stdout.strip():
                try:
                    return parse_changelog(out.stdout, f"rpm -q --changelog {pkg}")
                except ChangelogError:
                    return None
    return None


_CACHE: dict[str, Changelog] = {}


def cached_changelog(path: str) -> Changelog:
    """read_changelog, once per run (analyze asks for every crash). Raises ChangelogError."""
    cl = _CACHE.get(path)
    if cl is None:
        cl = _CACHE[path] = read_changelog(path)
    return cl


def changelog_for(kernel_release: str | None, path: str | None) -> Changelog | None:
    """The changelog to consult for a crash: the one given, else, when the crash happened on the kernel
    this machine runs, the installed package's. None when there is none."""
    if path:
        return cached_changelog(path)
    if not kernel_release or kernel_release != os.uname().release:
        return None
    key = "\0installed:" + kernel_release
    if key not in _CACHE:
        found = installed_changelog(kernel_release)
        if found is None:
            return None
        _CACHE[key] = found
    return _CACHE[key]


def debian_kernel(cl: Changelog) -> Any:
    """A Debian changelog names its build (`linux (6.1.192-3)`), and Debian follows the stable branch: the
    kernel as kb/fixed.py reads a Debian build string, so the upstream base can answer for fixes the
    changelog does not list one by one (they came with a 'New upstream stable update'). None for RPM."""
    from ktriage.kb.versions import parse_kver
    from ktriage.model import Kernel

    if cl.kind != "debian":
        return None
    base = parse_kver(cl.build.split(":", 1)[-1])
    if base is None:
        return None
    return Kernel(release=str(base), build=f"#1 SMP PREEMPT_DYNAMIC Debian {cl.build}", distro="debian")


def mismatch(cl: Changelog, release: str | None) -> str | None:
    """Why this changelog is not the crashed kernel's (an RPM changelog names its build: kernel-X), or None.
    A Debian changelog names the package version, which the release (6.1.0-40-amd64) does not carry."""
    if cl.kind != "rpm" or not release:
        return None
    from ktriage.kb.versions import split_nvr

    _, v, r = split_nvr(release)
    mine = f"{v}-{r}" if r else v
    if mine == cl.build or not cl.build[:1].isdigit():
        return None
    return f"{cl.label()} is not this kernel's ({release}): its answers are about kernel-{cl.build}"
