"""The second matching tier: a crash against the signatures quoted in the kernel's CVE records.

Why a separate tier: the hand-written rules are verified (a real positive and a near miss each) and come
first, always. A CVE record's signature is one crash report someone pasted into a commit message: it
names the bug's functions, but nobody checked that every crash with those functions is that bug. So a
match here is a *candidate*, reported after the rules, with its score and why, never as verified.

Score (0..1), over the parts a signature has:
  kind      1.5  the crash kind equals the quoted one (kasan, null-deref, warning...)
  guilty    2.5  the same guilty function (a generic one does not count)
  frames    3.0  specific call-trace functions shared, in order (LCS), over the shorter of the two traces
  window    1.0  the crashed kernel is at/after where the bug came in and before the fix on its branch
                 (unknown for distro kernels: half; outside the window: the candidate is dropped)
The kinds must be of one family (KIND_FAMILIES). A candidate needs the guilty function plus the same kind
or another shared function, or five shared functions with the tops of the two stacks meeting: one generic
function (rtnl_lock, __schedule... see data/generic-functions.txt) is never enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ktriage.kb.cve_fixed import cve_verdict, fix_summary
from ktriage.kb.cve_store import CveStore, store
from ktriage.kb.fixed import Verdict
from ktriage.model import Crash

WEIGHTS = {"kind": 1.5, "guilty": 2.5, "frames": 3.0, "window": 1.0}
MIN_SCORE = 0.5
MAX_CANDIDATES = 3
PLUMBING_RECORDS = 15  # a function in the quoted crashes of this many records says nothing about which bug
FRAMES_FULL = 5  # this many shared functions in order is a full frames score
TOP = 3  # "the top of the stack": the first specific functions of a trace
# Without the same guilty function, this many specific functions in order (and the tops meeting): on
# syzkaller's corpus, matches on 3-4 shared callers were other bugs of the same subsystem (USB gadget
# completion, netns cleanup, SCTP receive paths), see bench/kb_cve_corpus.py.
TRACE_ONLY = 5

# Kinds one bug can take: a use-after-free is a KASAN report on a KASAN kernel and a GPF, a NULL or a
# bad paging request on a production one; a WARN_ON and a BUG_ON guard the same condition. A candidate's
# kind must be in the crash kind's family (a KMSAN uninit-value fix does not explain a hung task).
KIND_FAMILIES = (
    frozenset(
        {
            "kasan",
            "kfence",
            "gpf",
            "null-deref",
            "paging-request",
            "slab-corruption",
            "list-corruption",
            "refcount",
            "bad-page",
            "usercopy",
            "stack-guard",
            "double-fault",
            "invalid-opcode",
        }
    ),
    frozenset({"warning", "bug", "invalid-opcode", "refcount", "list-corruption", "panic"}),
    frozenset({"hung-task", "soft-lockup", "hard-lockup", "rcu-stall", "lockdep"}),
    frozenset({"lockdep", "atomic-sleep"}),
    frozenset({"kmsan"}),
    frozenset({"kcsan"}),
    frozenset({"ubsan", "divide-error"}),
    frozenset({"memory-leak"}),
)


def kinds_compatible(a: str, b: str) -> bool:
    return a == b or any(a in f and b in f for f in KIND_FAMILIES)


@lru_cache(maxsize=1)
def generic_functions() -> frozenset[str]:
    """The data list (data/generic-functions.txt)."""
    try:
        text = resources.files("ktriage.kb").joinpath("data").joinpath("generic-functions.txt").read_text()
    except (OSError, ModuleNotFoundError):
        return frozenset()
    return frozenset(ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip())


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


@dataclass
class Candidate:
    """A CVE record whose quoted crash resembles this one: a lead to check, not an answer."""

    cve: str
    subject: str
    score: float
    why: list[str]
    verdict: Verdict
    entry: dict[str, Any] = field(repr=False, default_factory=dict)
    title: str = ""  # the quoted crash's title

    kind = "candidate"
    similar = False

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "kind": "candidate",
            "tier": "cve",
            "verified": False,
            "id": self.cve,
            "title": self.subject,
            "score": round(self.score, 3),
            "why": list(self.why),
            "quoted_crash": self.title,
            "fixed_in_this_kernel": self.verdict.answer,
            "fixed_reason": self.verdict.reason,
            "fixed_basis": self.verdict.basis,
            "fix": {
                "commit": e.get("commit", ""),
                "subject": self.subject,
                "mainline": e.get("mainline", ""),
                "stable": [rel for rel, _ in (e.get("stable") or {}).values()],
            },
            "cve": [self.cve],
        }

    def ask_changelog(self, cl: Any) -> None:
        """Fold in what the distro's changelog (kb/changelog.Changelog) says about this fix."""
        self.verdict = changelog_verdict(cl, self.entry, self.verdict)

    def _word(self) -> str:
        return {"yes": "fixed", "no": "NOT fixed", "unknown": "unknown"}.get(self.verdict.answer, "unknown")

    def text_lines(self) -> list[str]:
        return [
            f"candidate (CVE records, unverified, score {self.score:.2f}): {self.cve} {self.subject} — "
            f"{'; '.join(self.why)}; {fix_summary(self.entry)}; this kernel: {self._word()} — {self.verdict.reason}"
        ]

    def markdown_lines(self) -> list[str]:
        return [
            f"- Candidate from the CVE records (unverified, score {self.score:.2f}): "
            f"[{self.cve}](https://www.cve.org/CVERecord?id={self.cve}) {self.subject} — {'; '.join(self.why)}; "
            f"{fix_summary(self.entry)}; this kernel: {self._word()} — {self.verdict.reason}"
        ]


def changelog_verdict(cl: Any, entry: dict[str, Any], verdict: Verdict) -> Verdict:
    """The verdict once the distro's changelog is known: listed -> fixed in this build; a Debian build whose
    upstream stable base has the fix -> fixed; else the verdict, with "not listed up to this build"."""
    from ktriage.kb.changelog import debian_kernel, find_fix

    hit = find_fix(cl, entry.get("subject", ""), [entry["id"]])
    if hit.answer == "yes":
        return Verdict("yes", hit.text, f"changelog:{cl.kind}")
    k = debian_kernel(cl)
    if k is not None and verdict.answer != "yes":
        base = cve_verdict(entry, k)
        if base.answer == "yes":
            return Verdict("yes", f"{base.reason} ({hit.text.split(':')[0]})", base.basis)
    if verdict.answer == "no":
        return verdict
    return Verdict(verdict.answer, f"{verdict.reason}; {hit.text}", verdict.basis)


def _stack_names(crash: Crash) -> list[str]:
    from ktriage.kb.match import crash_stack

    out: list[str] = []
    for n, _m in crash_stack(crash):
        if n not in out:
            out.append(n)
    return out


def score_entry(
    crash: Crash, entry: dict[str, Any], specific: Sequence[str], plumbing: set[str], guilty: str
) -> tuple[float, list[str], str] | None:
    """Best (score, why, quoted title) over an entry's signatures, or None when none qualifies."""
    best: tuple[float, list[str], str] | None = None
    for sig in entry.get("sigs") or []:
        frames = [f for f in sig.get("frames") or [] if f not in plumbing]
        g = sig.get("guilty") or ""
        if not kinds_compatible(str(sig.get("kind")), crash.kind):
            continue
        kind_ok = sig.get("kind") == crash.kind
        guilty_ok = bool(g) and g == guilty and g not in plumbing
        shared = _lcs(frames, specific)
        # the tops of the two stacks meet: where it crashed, not only the path that led there
        top_ok = bool(set(frames[:TOP]) & set(specific[:TOP]))
        if not ((guilty_ok and (kind_ok or shared >= 2)) or (top_ok and shared >= TRACE_ONLY)):
            continue
        parts = {
            "kind": 1.0 if kind_ok else 0.0,
            "guilty": 1.0 if guilty_ok else 0.0,
            "frames": min(1.0, shared / max(1, min(FRAMES_FULL, len(frames), len(specific)))),
        }
        why = []
        if kind_ok:
            why.append(f"kind {crash.kind}")
        if guilty_ok:
            why.append(f"guilty {g}")
        if shared:
            common = [f for f in frames if f in set(specific)]
            why.append(f"{shared} call-trace function(s) in order: {', '.join(common[:4])}")
        s = sum(WEIGHTS[k] * v for k, v in parts.items())
        if best is None or s > best[0]:
            best = (s, why, str(sig.get("title") or ""))
    return best


def match_cve(
    crash: Crash,
    exclude: Iterable[str] = (),
    st: CveStore | None = None,
    limit: int = MAX_CANDIDATES,
    keep_outside_window: bool = False,
) -> list[Candidate]:
    """Candidates for one crash, best first. `exclude`: CVE ids a hand-written rule already matched."""
    st = st if st is not None else store()
    names = _stack_names(crash)
    from ktriage.logs.guilty import is_generic

    generic = generic_functions()
    names = [n for n in names if n not in generic and not is_generic(n)]
    if not names or not st.available:
        return []
    freq = st.frequencies(names)
    plumbing = set(generic) | {f for f, n in freq.items() if n >= PLUMBING_RECORDS}
    specific = [n for n in names if n not in plumbing]
    lookup = [n for n in specific if n in freq]
    if not lookup:
        return []
    from ktriage.logs.frames import normalize

    guilty = normalize(crash.guilty_frame) if crash.guilty_frame else ""
    skip = {x.upper() for x in exclude}
    branches = st.header().get("branches") or []
    out: list[Candidate] = []
    total = sum(WEIGHTS.values())
    for entry in st.with_functions(lookup):
        if entry["id"] in skip:
            continue
        got = score_entry(crash, entry, specific, plumbing, guilty)
        if got is None:
            continue
        raw, why, title = got
        v = cve_verdict(entry, crash.kernel, branches)
        if v.answer == "no":
            window, wwhy = 1.0, "kernel in the affected window"
        elif v.answer == "yes" or v.affected is False:
            if not keep_outside_window:
                continue
            window, wwhy = 0.0, "kernel OUTSIDE the affected window"
        else:
            window, wwhy = 0.5, "kernel window unknown"
        score = (raw + WEIGHTS["window"] * window) / total
        if score < MIN_SCORE:
            continue
        out.append(Candidate(entry["id"], entry.get("subject", ""), score, [*why, wwhy], v, entry, title))
    out.sort(key=lambda c: (-c.score, c.cve))
    return out[:limit]
