"""Does this kernel carry the fix? "yes" / "no" / "unknown", always with the reason.

Order of evidence:
  1. distro entries of the rule (el6..el10: RPM NVR order; debian/ubuntu: dpkg order),
  2. for vanilla/stable kernels: the upstream fix (mainline release, stable backports per branch).
A distro kernel's upstream base says nothing about backports (RHEL 3.10 carries 5.x features), so
without a distro entry the answer is "unknown", never a guess from the base version.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ktriage.kb.rules import Rule
from ktriage.kb.versions import KVer, RunningKernel, debvercmp, may_be_next_cycle, parse_kver, rpm_evr_cmp, split_nvr

YES, NO, UNKNOWN = "yes", "no", "unknown"


@dataclass(frozen=True)
class Verdict:
    answer: str  # yes, no, unknown
    reason: str
    basis: str = ""  # distro:el7, distro:debian, upstream, none
    affected: bool | None = None  # False: the kernel predates the bug (vanilla kernels only)


def _nvr(release: str) -> str:
    e, v, r = split_nvr(release)
    return f"{v}-{r}" if r else v


def _decide(
    running: str, entries: list[dict[str, Any]], cmp: Callable[[str, str], int], label: str, what: str
) -> Verdict | None:
    """Apply fixed_in / not_fixed_through entries of one distro; None when none applies."""
    fixed = [e["fixed_in"] for e in entries if e.get("fixed_in")]
    through = [e["not_fixed_through"] for e in entries if e.get("not_fixed_through")]
    for f in sorted(fixed, key=_cmp_key(cmp)):
        if cmp(running, f) >= 0:
            return Verdict(YES, f"{label} fixed in {f}; {what} {running} is that or newer", f"distro:{label}")
    for n in sorted(through, key=_cmp_key(cmp), reverse=True):
        if cmp(running, n) <= 0:
            rel = "that build" if cmp(running, n) == 0 else "older"
            return Verdict(NO, f"{label} not fixed through {n}, and {what} {running} is {rel}", f"distro:{label}")
    if fixed:
        first = sorted(fixed, key=_cmp_key(cmp))[0]
        return Verdict(NO, f"{label} fixed in {first}; {what} {running} is older", f"distro:{label}")
    if through:
        last = sorted(through, key=_cmp_key(cmp))[-1]
        return Verdict(
            UNKNOWN,
            f"{label} known unfixed through {last}; {what} {running} is newer and no fixed build is recorded",
            f"distro:{label}",
        )
    return None


def _cmp_key(cmp: Callable[[str, str], int]) -> Any:
    import functools

    return functools.cmp_to_key(cmp)


def upstream_verdict(rule: Rule, v: KVer, what: str = "", snapshot: bool = False) -> Verdict:
    """A vanilla/stable release against the upstream fix.

    Versions name release cycles: "introduced 6.6" means the 6.6 cycle, so 6.6-rc7 has the bug; "fixed in
    5.19" does not say which 5.19-rc got it, so a 5.19-rc kernel is "unknown". A git snapshot (`snapshot`)
    of a final release may hold commits of the next merge window."""
    fix = rule.fix
    mainline = parse_kver(fix.get("mainline")) or rule.fixed
    intro = rule.introduced or parse_kver(fix.get("fixes_release"))
    stables = {k.branch: k for k in (parse_kver(s) for s in fix.get("stable") or []) if k}
    name = what or str(v)
    intro_start = KVer(intro.major, intro.minor, 0, 1) if intro and not intro.is_rc and not intro.patch else intro
    if intro_start is not None and v < intro_start and not (snapshot and may_be_next_cycle(v, intro_start)):
        return Verdict(
            UNKNOWN,
            f"{name} predates the bug (introduced in {intro}): probably another bug",
            "upstream",
            affected=False,
        )
    if mainline is None:
        return Verdict(UNKNOWN, "the rule records no release with the fix", "upstream")
    if v.is_rc and not mainline.is_rc and v.branch == mainline.branch:
        return Verdict(
            UNKNOWN, f"the fix is in {mainline}; which {mainline}-rc first had it is not recorded", "upstream"
        )
    if snapshot and may_be_next_cycle(v, mainline):
        return Verdict(
            UNKNOWN,
            f"{name} is a git snapshot after {v}, possibly inside the {mainline.major}."
            f"{mainline.minor} merge window where the fix landed",
            "upstream",
        )
    if v >= mainline:
        return Verdict(YES, f"{name} >= {mainline}, the first mainline release with the fix", "upstream")
    s = stables.get(v.branch)
    if s is not None:
        if v >= s:
            return Verdict(
                YES, f"{name} >= {s}, the first {v.major}.{v.minor}.y stable release with the fix", "upstream"
            )
        return Verdict(
            NO, f"{name} < {s}, the first {v.major}.{v.minor}.y stable release with the fix", "upstream", affected=True
        )
    rng = f"[{intro}, {mainline})" if intro else f"before {mainline}"
    return Verdict(
        NO,
        f"{name} is in the affected range {rng} and no {v.major}.{v.minor}.y stable backport is recorded",
        "upstream",
        affected=True,
    )


_UBU_PKG = re.compile(r"^(\d+\.\d+\.\d+)-(\d+)\.(\d+)")


def _ubuntu(rule: Rule, rk: RunningKernel, entries: list[dict[str, Any]]) -> Verdict:
    if not entries:
        return Verdict(
            UNKNOWN,
            f"no ubuntu entry in this rule; Ubuntu kernels carry backports, so the upstream "
            f"base {rk.upstream} does not decide it",
            "none",
        )
    if rk.package:
        same = [e for e in entries if _deb_branch(e) == _branch_of(rk.package)]
        v = _decide(rk.package, same, debvercmp, "ubuntu", "package") if same else None
        if v:
            return v
    if rk.ubuntu_abi:
        base, abi = rk.ubuntu_abi
        for e in entries:
            m = _UBU_PKG.match(e.get("fixed_in") or "")
            if m and m.group(1) == base:
                fabi = int(m.group(2))
                if abi > fabi:
                    return Verdict(
                        YES,
                        f"ubuntu fixed in {e['fixed_in']}; {rk.release} has a later ABI ({abi} > {fabi})",
                        "distro:ubuntu",
                    )
                if abi < fabi:
                    return Verdict(
                        NO,
                        f"ubuntu fixed in {e['fixed_in']}; {rk.release} has an older ABI ({abi} < {fabi})",
                        "distro:ubuntu",
                    )
                return Verdict(
                    UNKNOWN,
                    f"ubuntu fixed in {e['fixed_in']}; {rk.release} has the same ABI {abi} and "
                    f"the upload number (the '#NNN-Ubuntu' build string) is not in the crash",
                    "distro:ubuntu",
                )
            m = _UBU_PKG.match(e.get("not_fixed_through") or "")
            if m and m.group(1) == base and abi < int(m.group(2)):
                return Verdict(
                    NO,
                    f"ubuntu not fixed through {e['not_fixed_through']}; {rk.release} has an older "
                    f"ABI ({abi} < {m.group(2)})",
                    "distro:ubuntu",
                )
    listed = ", ".join(str(e.get("fixed_in") or e.get("not_fixed_through") or "?") for e in entries)
    return Verdict(
        UNKNOWN, f"ubuntu entries ({listed}) are for another kernel series than {rk.release}", "distro:ubuntu"
    )


def _branch_of(debver: str) -> tuple[int, int] | None:
    k = parse_kver(debver.split(":", 1)[-1])
    return k.branch if k else None


def _deb_branch(e: dict[str, Any]) -> tuple[int, int] | None:
    return _branch_of(e.get("fixed_in") or e.get("not_fixed_through") or "")


def _debian(rule: Rule, rk: RunningKernel, entries: list[dict[str, Any]]) -> Verdict:
    fixed_list = ", ".join(e.get("fixed_in") or f"not fixed through {e.get('not_fixed_through')}" for e in entries)
    if not rk.package:
        hint = f" (the rule has debian {fixed_list})" if entries else ""
        return Verdict(
            UNKNOWN,
            f"the release {rk.release} does not give the Debian package version (a build "
            f"string like 'Debian 6.1.76-1' would){hint}",
            "none",
        )
    same = [e for e in entries if _deb_branch(e) == _branch_of(rk.package)]
    v = _decide(rk.package, same, debvercmp, "debian", "package") if same else None
    if v:
        return v
    base = parse_kver(rk.package.split(":", 1)[-1])
    if base is not None:
        up = upstream_verdict(rule, base, f"upstream {base}")
        if up.answer == YES:
            return Verdict(YES, f"Debian package {rk.package} is based on stable {base}: {up.reason}", "upstream")
        if up.affected is False:
            return up
    why = f"no debian entry for the {base.major}.{base.minor} series" if base else "no debian entry"
    return Verdict(
        UNKNOWN,
        f"Debian package {rk.package}: {why}; its upstream base lacks the fix but Debian may carry it as a patch",
        "none",
    )


def fixed_verdict(rule: Rule, kernel: Any) -> Verdict:
    """kernel: a ktriage.model.Kernel (release, build, distro)."""
    from ktriage.kb.versions import running_kernel

    rk = running_kernel(
        getattr(kernel, "release", None), getattr(kernel, "build", None), getattr(kernel, "distro", None)
    )
    if rk is None:
        return Verdict(UNKNOWN, "the crash does not show the kernel release", "none")
    entries = [e for e in rule.section("distros") if isinstance(e, dict)]
    if rk.family == "el":
        mine = [e for e in entries if e.get("distro") == rk.distro]
        if not mine:
            return Verdict(
                UNKNOWN,
                f"no {rk.distro} entry in this rule; RHEL-family kernels backport fixes and "
                f"features, so the upstream base {rk.upstream} does not decide it",
                "none",
            )
        v = _decide(_nvr(rk.release), mine, rpm_evr_cmp, rk.distro or "el", "this kernel")
        return v or Verdict(UNKNOWN, f"no usable {rk.distro} entry", "none")
    if rk.family == "debian":
        return _debian(rule, rk, [e for e in entries if e.get("distro") == "debian"])
    if rk.family == "ubuntu":
        return _ubuntu(rule, rk, [e for e in entries if e.get("distro") == "ubuntu"])
    if rk.family == "upstream" and rk.upstream is not None:
        return upstream_verdict(rule, rk.upstream, rk.release, rk.snapshot)
    who = f"a {rk.distro} vendor kernel" if rk.distro else "a vendor kernel"
    return Verdict(
        UNKNOWN,
        f"{rk.release} is {who}; vendors backport fixes, so its base version does not decide "
        f"it and the rule has no entry for it",
        "none",
    )
