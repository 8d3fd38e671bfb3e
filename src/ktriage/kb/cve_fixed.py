"""Fixed-in for a CVE of the generated tier, on any kernel: the hand-written rules' logic (kb/fixed.py),
fed with the record's releases, plus what only the records know: a bug that came into a stable branch
by a backport (4.14.189) and branches in the affected range that never got the fix."""

from __future__ import annotations

from typing import Any

from ktriage.kb.fixed import NO, UNKNOWN, YES, Verdict, fixed_verdict
from ktriage.kb.rules import Rule
from ktriage.kb.versions import KVer, parse_kver, running_kernel
from ktriage.model import Kernel


def as_rule(entry: dict[str, Any]) -> Rule:
    """The entry in the shape kb/fixed.py reads (fix.mainline, fix.stable, introduced)."""
    stable = [rel for rel, _commit in (entry.get("stable") or {}).values()]
    intros = [k for k in (parse_kver(s) for s in entry.get("introduced") or []) if k is not None]
    mainline_intro = min((k for k in intros if not k.patch), default=None)
    data = {
        "id": entry["id"],
        "title": entry.get("subject", ""),
        "status": "fixed" if entry.get("mainline") else "open",
        "fix": {
            "commit": entry.get("commit") or "",
            "subject": entry.get("subject") or "",
            "mainline": entry.get("mainline") or "",
            "stable": stable,
        },
        "cve": [entry["id"]],
    }
    return Rule(
        id=entry["id"],
        data=data,
        path="",
        origin="cve",
        introduced=mainline_intro,
        fixed=parse_kver(entry.get("mainline")),
    )


def unfixed_branches(entry: dict[str, Any], branches: list[str]) -> list[str]:
    """Stable branches that had the bug and never got the fix: those where a backport brought it in with
    no fix after, and every known stable branch between where it came in and the mainline fix that has
    no fixed release in the record."""
    out = dict.fromkeys((entry.get("unfixed") or {}).keys())
    intro = min((k for k in (parse_kver(s) for s in entry.get("introduced") or []) if k and not k.patch), default=None)
    ml = parse_kver(entry.get("mainline"))
    fixed = set((entry.get("stable") or {}).keys()) | set((entry.get("backported") or {}).keys())
    if intro is not None and ml is not None:
        for b in branches:
            k = parse_kver(b)
            if k is not None and intro.branch <= k.branch < ml.branch and b not in fixed:
                out[b] = None
    return sorted(out, key=lambda b: parse_kver(b) or KVer(0, 0))


def cve_verdict(entry: dict[str, Any], kernel: Kernel, branches: list[str] | None = None) -> Verdict:
    """Is this kernel fixed for this CVE? yes / no / unknown, with the reason."""
    rk = running_kernel(kernel.release, kernel.build, kernel.distro)
    v = rk.upstream if rk is not None and rk.family == "upstream" else None
    if v is not None and not v.is_rc:
        br = f"{v.major}.{v.minor}"
        came = parse_kver((entry.get("unfixed") or {}).get(br))
        if came is not None:
            if v < came:
                return Verdict(
                    UNKNOWN,
                    f"{kernel.release} predates {came}, where a backport brought the bug into {br}.y",
                    "upstream",
                    affected=False,
                )
            return Verdict(
                NO,
                f"the bug came into {br}.y with {came} (a backport) and the {br} branch never got the fix"
                + (f" (first fixed in mainline {entry['mainline']})" if entry.get("mainline") else ""),
                "upstream",
                affected=True,
            )
        came = parse_kver((entry.get("backported") or {}).get(br))
        fix = parse_kver(((entry.get("stable") or {}).get(br) or ["", ""])[0])
        if came is not None and fix is not None and v >= came:
            if v >= fix:
                return Verdict(
                    YES, f"{kernel.release} >= {fix}, the first {br}.y stable release with the fix", "upstream"
                )
            return Verdict(
                NO,
                f"{kernel.release} < {fix}, the first {br}.y stable release with the fix (the bug came into "
                f"{br}.y with {came}, a backport)",
                "upstream",
                affected=True,
            )
        for s in [*(entry.get("introduced") or []), *(entry.get("backported") or {}).values()]:
            k = parse_kver(s)
            if k is not None and k.patch and k.branch == v.branch and v < k:
                return Verdict(
                    UNKNOWN,
                    f"{kernel.release} predates {k}, where the bug came into {br}.y",
                    "upstream",
                    affected=False,
                )
    verdict = fixed_verdict(as_rule(entry), kernel)
    if verdict.answer == NO and v is not None and "stable backport is recorded" in verdict.reason:
        return Verdict(
            NO,
            f"{kernel.release} is in the affected range and the {v.major}.{v.minor} branch never got the fix "
            f"(no {v.major}.{v.minor}.y release with it in the CVE record; first fixed in mainline "
            f"{entry.get('mainline')})",
            verdict.basis,
            affected=True,
        )
    if (
        verdict.answer == UNKNOWN
        and verdict.basis == "none"
        and rk is not None
        and rk.family in ("el", "debian", "ubuntu", "vendor")
    ):
        who = f"a {rk.distro} kernel" if rk.distro else "a distro or vendor kernel"
        return Verdict(
            UNKNOWN,
            f"{kernel.release} is {who}: it backports fixes without changing its upstream version, so ask "
            "the distro: its kernel changelog lists them (--changelog FILE)",
            verdict.basis,
        )
    return verdict


def fix_summary(entry: dict[str, Any]) -> str:
    """`fix 56b14ecec97f (v5.19; stable 4.14.282, 4.19.246, ...)`."""
    where = []
    if entry.get("mainline"):
        where.append(f"v{entry['mainline']}")
    stable = [rel for rel, _ in (entry.get("stable") or {}).values()]
    if stable:
        where.append("stable " + ", ".join(stable))
    s = f"fix {entry.get('commit') or '?'}"
    return s + (f" ({'; '.join(where)})" if where else "")


__all__ = ["YES", "NO", "UNKNOWN", "as_rule", "cve_verdict", "fix_summary", "unfixed_branches"]
