"""The verdict: what a person reads first, composed from the findings and the knowledge-base match.

A report is long because the evidence is; the verdict is the few lines at its top that say what
happened (kind, where, the bad pointer and the member when known), why ktriage thinks so and how
sure, which known bug it is and whether this kernel has the fix, what to do now, and the one input
or check that would settle what is still open. Every word of it comes from a Crash field, a Finding
or a KB Match: nothing here is written for one case, so the verdict can never say more than the
report under it (tests compare the two).

Knowledge-base matches come in tiers: hand-written rules ("rules", checked against real crashes)
and generated CVE candidates ("cve"). A candidate is never presented as the answer: it is
"possibly CVE-X (candidate, score N)", and a hand-written match, when there is one, comes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ktriage.model import KINDS, Crash, CrashReport, Finding, Skipped

__all__ = ["Verdict", "anchor_finding", "best_match", "compose", "unlock_line"]

# How each kind reads at the start of a sentence (the KINDS text is a definition, not a headline).
_KIND_PHRASE = {
    "null-deref": "NULL pointer dereference",
    "paging-request": "Bad kernel memory access (paging request)",
    "gpf": "General protection fault",
    "bug": "BUG() assertion",
    "invalid-opcode": "Invalid opcode",
    "warning": "WARN() warning",
    "soft-lockup": "Soft lockup",
    "hard-lockup": "Hard lockup",
    "rcu-stall": "RCU stall",
    "hung-task": "Hung task",
    "list-corruption": "Linked-list corruption",
    "refcount": "refcount_t error",
    "divide-error": "Division by zero",
    "panic": "Kernel panic",
    "double-fault": "Double fault",
    "memory-leak": "Memory leak (kmemleak)",
    "lockdep": "Lockdep report",
    "stack-protector": "Stack canary corrupted",
    "stack-guard": "Kernel stack overflow",
    "usercopy": "Hardened usercopy violation",
    "bad-page": "Bad page state",
    "slab-corruption": "Slab corruption",
    "mce": "Machine check (hardware error)",
    "atomic-sleep": "Sleeping function called from atomic context",
    "oom": "Out of memory",
    "page-alloc-failure": "Page allocation failure",
}
# Kinds whose title already says the bug type in the words kernel developers search by
# ("KASAN: use-after-free Read in consume_skb"): the verdict starts with the title itself.
_TITLE_KINDS = ("kasan", "kfence", "kmsan", "kcsan", "ubsan", "lockdep")

# The findings that explain the bad access, strongest evidence first: (code, where the evidence comes from).
_ANCHORS: tuple[tuple[str, str], ...] = (
    ("vmcore.use-after-free", "memory read back from the vmcore"),
    ("vmcore.race", "memory read back from the vmcore"),  # only when the memory changed (see anchor_finding)
    ("vmcore.object-bounds", "the slab object's size read from the vmcore"),
    ("vmcore.member", "the vmcore with types"),
    ("src.fault-member", "the trapping instruction and the debug info"),
    ("vmcore.deadlock", "the locks' own wait lists in the vmcore"),
    ("vmcore.hung", "the vmcore's task and lock state"),
    ("value.list-poison", "the list-debug report"),
    ("insn.bad-access", "the Code: bytes decoded with the register dump"),
    ("insn.trap-bug", "the Code: bytes"),
    ("value.slab-poison", "the register values"),
    ("value.null-offset", "the registers and the fault address only (no decodable Code: line)"),
    ("regs.likely-base", "the registers and the fault address only (no decodable Code: line)"),
)
_MEMBER_CODES = ("vmcore.member", "src.fault-member")
_MEMORY_KINDS = ("null-deref", "paging-request", "gpf", "kasan", "kfence")
_STUCK_KINDS = ("hung-task", "soft-lockup", "hard-lockup", "rcu-stall")


@dataclass(frozen=True)
class Verdict:
    """The conclusion about one crash, as facts (for JSON and tests) and as at most 8 lines of text."""

    kind: str
    function: str | None
    module: str | None
    fault_address: int | None
    bad_pointer: str | None  # "RAX = 0x0 (NULL)", "RDI = 0x6b6b6b6b6b6b6b6b (slab free poison)"
    member: str | None  # "port->dev->rx_count", or "offset 0xa30" when only the offset is known
    what: str
    why: str
    confidence: str  # of the explanation: the anchor finding's confidence ("low" when there is none)
    bug_id: str | None = None
    bug_title: str | None = None
    bug_tier: str | None = None  # "rules" (hand-written) or "cve" (generated candidate)
    bug_candidate: bool = False  # True: a CVE-tier candidate or a similar (not matching) rule
    bug: str | None = None
    fixed_in_this_kernel: str | None = None  # yes, no, unknown (None: no bug matched)
    fixed_in: tuple[str, ...] = ()  # "v5.19", "stable 5.15.45", "el8 4.18.0-394.el8"
    fix: str | None = None
    action: str | None = None
    next_step: str | None = None
    lines: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "why": self.why,
            "confidence": self.confidence,
            "kind": self.kind,
            "function": self.function,
            "module": self.module,
            "fault_address": self.fault_address,
            "bad_pointer": self.bad_pointer,
            "member": self.member,
            "bug": {
                "id": self.bug_id,
                "title": self.bug_title,
                "tier": self.bug_tier,
                "candidate": self.bug_candidate,
                "text": self.bug,
            }
            if self.bug_id
            else None,
            "fixed_in_this_kernel": self.fixed_in_this_kernel,
            "fixed_in": list(self.fixed_in),
            "fix": self.fix,
            "action": self.action,
            "next_step": self.next_step,
            "lines": list(self.lines),
        }


# ------------------------------------------------------------------------------------------ facts


def _find(findings: Sequence[Finding], code: str) -> Finding | None:
    return next((f for f in findings if f.code == code), None)


def _where(c: Crash) -> tuple[str | None, str | None, str]:
    """The function to blame, its module, and how to say it ("in f [mod] (faulting in g)")."""
    func = c.guilty_frame or (c.ip.symbol if c.ip else None)
    mod = None
    if c.ip is not None and c.ip.symbol and c.ip.symbol == func:
        mod = c.ip.module
    else:
        mod = next((f.module for f in c.frames if f.symbol == func and f.module), None)
    if not func:
        return None, None, "in an unknown function"
    text = f"in {func}" + (f" [{mod}]" if mod else "")
    if c.ip is not None and c.ip.symbol and c.ip.symbol != func:
        text += f" (faulting in {c.ip.symbol})"
    return func, mod, text


def _member(findings: Sequence[Finding]) -> str | None:
    for code in _MEMBER_CODES:
        f = _find(findings, code)
        if f is not None and f.data.get("expression"):
            return str(f.data["expression"])
    return None


def _bad_pointer(c: Crash, findings: Sequence[Finding]) -> tuple[str | None, str | None]:
    """(register = value (what it is), the access in words) from the decoded access or the register guess."""
    acc = _find(findings, "insn.bad-access")
    null = _find(findings, "value.null-offset")
    poison = _find(findings, "value.slab-poison") or _find(findings, "value.list-poison")
    errp = _find(findings, "value.err-ptr")
    likely = _find(findings, "regs.likely-base")
    base = val = None
    if acc is not None and acc.data.get("base"):
        base = str(acc.data["base"])
        val = (acc.data.get("values") or {}).get(base)
    elif null is not None and null.data.get("base"):
        base = str(null.data["base"])
        val = 0
    elif likely is not None and likely.data.get("base_candidates"):
        base = str(likely.data["base_candidates"][0])
        val = likely.data.get("base_value")
    what = None
    if poison is not None:
        what = str(poison.data.get("name") or "poison")
    elif errp is not None:
        what = f"ERR_PTR {errp.data.get('name') or ''}".strip()
    elif val == 0:
        what = "NULL"
    ptr = None
    if base is not None:
        ptr = f"{base}" + (f" = {val:#x}" if isinstance(val, int) else "") + (f" ({what})" if what else "")
        if acc is None:
            ptr += ", the likely base"
    access = None
    if acc is not None:
        disp = int(acc.data.get("disp") or 0)
        size = acc.data.get("size")
        access = f"{size}-byte {acc.data.get('access') or 'access'} of [{base}" + (f" + {disp:#x}]" if disp else "]")
    elif null is not None and null.data.get("offset") is not None:
        access = f"access at NULL + {int(null.data['offset']):#x}"
    elif c.fault_address is not None:
        access = f"access at {c.fault_address:#x}"
    return ptr, access


def anchor_finding(findings: Sequence[Finding]) -> tuple[Finding | None, str]:
    """The finding the explanation rests on (strongest evidence first) and where its evidence comes from."""
    for code, source in _ANCHORS:
        f = _find(findings, code)
        if f is not None and not (code == "vmcore.race" and not f.data.get("changed")):
            return f, source
    return None, "the oops header and call trace only"


def best_match(cr: CrashReport) -> tuple[Any | None, bool]:
    """The match to lead with and whether it is only a candidate.

    A full hand-written match wins; then a full CVE-tier match (a candidate); then a similar rule
    (a candidate, "not a match"). Notes (rule files that did not load) are never a match."""
    matches = [m for m in cr.known_bugs if getattr(m, "kind", "") == "match"]
    full = [m for m in matches if not getattr(m, "similar", False)]
    rules = [m for m in full if getattr(m, "tier", "rules") != "cve"]
    if rules:
        return max(rules, key=lambda m: m.score), False
    if full:  # only generated (CVE-tier) candidates: never presented as the answer
        return max(full, key=lambda m: m.score), True
    if matches:
        return max(matches, key=lambda m: m.score), True
    return None, False


def _fixed_in(m: Any) -> tuple[str, ...]:
    fix = getattr(m, "fix", None) or {}
    out = []
    if fix.get("mainline"):
        out.append(f"v{fix['mainline']}")
    out += [f"stable {s}" for s in fix.get("stable") or ()]
    for d in getattr(m, "distros", None) or ():
        if isinstance(d, dict) and d.get("fixed_in"):
            out.append(f"{d.get('distro')} {d['fixed_in']}")
    return tuple(out)


def _upgrade_target(c: Crash, m: Any) -> str | None:
    """The release to move to: this distro's fixed build, else the fixed stable release of this branch, else mainline."""
    fixes = _fixed_in(m)
    distro = c.kernel.distro
    for f in fixes:
        if distro and f.startswith(distro + " "):
            return f.split(" ", 1)[1]
    if distro and any(isinstance(d, dict) and d.get("distro") == distro for d in getattr(m, "distros", None) or ()):
        return None  # a distro kernel: the upstream release says nothing about its backports
    rel = c.kernel.release or ""
    branch = ".".join(rel.split(".")[:2])
    for f in fixes:
        if f.startswith("stable ") and branch and f[7:].startswith(branch + "."):
            return f[7:]
    mainline = next((f for f in fixes if f.startswith("v")), None)
    return mainline[1:] if mainline else None


def _workaround(m: Any) -> str | None:
    ws = [w for w in getattr(m, "workarounds", None) or () if isinstance(w, dict)]
    if not ws:
        return None
    w = ws[0]
    how = " ".join(str(w.get("how") or "").split()).split("; ")[0]
    title = str(w.get("title") or "").strip()
    cost = " ".join(str(w.get("cost") or "").split())
    text = (title + ": " if title else "") + f"`{how}`"
    if len(text) > 160:
        text = text[:156].rstrip() + "...`"
    return text + (f" (cost: {cost.split('; ')[0].strip()})" if cost else "")


def unlock_line(skipped: Sequence[Skipped]) -> str | None:
    """'not analyzed' in one line: how many analyzers each missing input would unlock, most first."""
    groups: dict[str, int] = {}
    detail: dict[str, str] = {}
    for s in skipped:
        r = s.reason
        if r.startswith("needs vmcore") or r == "needs a vmcore":
            key = "a vmcore"
        elif s.analyzer == "debuginfo" or "needs the vmlinux" in r or "debug info" in r.lower():
            key = "debug info"
            detail[key] = r.split(":", 1)[0].replace("needs ", "") if r.startswith("needs ") else ""
        elif "Code:" in r:
            key = "a Code: line"
        else:
            key = "other"
        groups[key] = groups.get(key, 0) + 1
    if not groups:
        return None
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] == "other", -kv[1]))
    parts = []
    for key, n in ordered:
        if key == "other":
            parts.append(f"{n} not applicable or failed")
        else:
            d = f" ({detail[key]})" if detail.get(key) else ""
            parts.append(f"{key}{d} would unlock {n}")
    return f"not analyzed: {len(skipped)} analyzers; " + "; ".join(parts) + " (-v lists them)"


def _next_step(c: Crash, cr: CrashReport, m: Any, candidate: bool, member: str | None) -> str | None:
    """The one input or check that settles what is still open."""
    f = cr.findings
    if m is not None and not candidate and getattr(m, "fixed_in_this_kernel", "") != "yes":
        pc = m.probe_command() if hasattr(m, "probe_command") else None
        if pc:
            return f"confirm it is {m.rule_id} on a running host: `{pc}`"
    missing = _find(f, "vmcore.debuginfo-missing")
    if missing is not None and missing.data.get("missing"):
        return f"give the debug file {'; '.join(map(str, missing.data['missing']))} (locals, source lines, member)"
    if member is None and c.kind in _MEMORY_KINDS:
        dbg = next((s for s in cr.skipped if s.analyzer == "debuginfo"), None)
        if dbg is not None and dbg.reason.startswith("needs "):
            what = dbg.reason.split(":", 1)[0][len("needs ") :]
            return f"give {what} (--vmlinux/--debuginfo, or DEBUGINFOD_URLS) to name the source line and member"
    if any(s.reason.startswith("needs vmcore") for s in cr.skipped):
        if c.kind in _MEMORY_KINDS:
            return "a vmcore (kdump) of the next crash: it shows whether the object was freed or changed under the CPU"
        if c.kind in _STUCK_KINDS:
            return "a vmcore (kdump) of the next one: it shows every task's stack and who holds the lock"
    if m is not None and candidate:
        return f"compare with `ktriage kb show {m.rule_id}`: it is a candidate, not a confirmed match"
    return None


# ------------------------------------------------------------------------------------------ compose


def compose(cr: CrashReport) -> Verdict:
    """The verdict of one analysed crash."""
    c, f = cr.crash, cr.findings
    func, mod, where = _where(c)
    member = _member(f)
    ptr, access = _bad_pointer(c, f)
    null = _find(f, "value.null-offset")
    if member is None and null is not None and null.data.get("offset") is not None and c.kind in _MEMORY_KINDS:
        member_text = f"the member at offset {int(null.data['offset']):#x}"
        member_fact: str | None = f"offset {int(null.data['offset']):#x}"
    else:
        member_text = f"`{member}`" if member else ""
        member_fact = member

    if c.kind in _TITLE_KINDS and c.title:
        what = (
            c.title
            + (f" [{mod}]" if mod else "")
            + (where[where.index(" (faulting") :] if "(faulting" in where else "")
        )
    else:
        phrase = _KIND_PHRASE.get(c.kind) or KINDS.get(c.kind, c.kind)
        what = f"{phrase[:1].upper()}{phrase[1:]} {where}"
    details = []
    if member_text and c.kind in _MEMORY_KINDS:
        verb = "reading" if access and "read" in access and "write" not in access else "accessing"
        details.append(f"{verb} {member_text}")
    if ptr:
        details.append(f"through {ptr}")
    elif access and c.kind in _MEMORY_KINDS and not member_text:
        details.append(access)
    uaf = _find(f, "vmcore.use-after-free")
    race = _find(f, "vmcore.race")
    bounds = _find(f, "vmcore.object-bounds")
    if bounds is not None and bounds.data.get("object_size"):
        details.append(
            f"read beyond the {bounds.data['object_size']}-byte object in slab cache {bounds.data.get('cache', '?')}"
        )
    if uaf is not None:
        details.append(f"the object is FREE in slab cache {(uaf.data.get('slab') or {}).get('cache', '?')}")
    elif race is not None and race.data.get("changed"):
        details.append("the object changed after the CPU read it (race or reuse)")
    elif _find(f, "value.slab-poison") is not None:
        details.append("the pointer came from freed memory")
    elif _find(f, "value.list-poison") is not None:
        details.append("the list entry was already deleted")
    dl = _find(f, "vmcore.deadlock")
    hung = _find(f, "vmcore.hung")
    if dl is not None:
        text = dl.summary.split(". ")[0].rstrip(".")
        details.append(text[:1].lower() + text[1:])
    elif hung is not None:
        first = next(iter(hung.data.get("tasks") or ()), None)
        lock, owner = (first or {}).get("lock") or {}, (first or {}).get("owner") or {}
        if first and lock.get("name"):
            waits = f"{first.get('comm')}[{first.get('pid')}] waits on {lock.get('kind', 'lock')} {lock['name']}"
            if owner.get("comm"):
                waits += f" held by {owner['comm']}[{owner.get('pid')}] (state {owner.get('state', '?')})"
            details.append(waits)
    what += (": " + ", ".join(details) if details else "") + "."

    anchor, source = anchor_finding(f)
    confidence = anchor.confidence if anchor is not None else "low"
    why = f"Evidence: {source}; confidence {confidence}"
    if anchor is not None:
        why += f" ({anchor.code})"
    why += "."

    m, candidate = best_match(cr)
    bug = fix_text = action = None
    bug_id = bug_title = bug_tier = fixed_answer = None
    fixed_in: tuple[str, ...] = ()
    if m is not None:
        bug_id, bug_title = m.rule_id, m.title
        bug_tier = getattr(m, "tier", "rules") or "rules"
        fixed_in = _fixed_in(m)
        if getattr(m, "similar", False):
            bug = f"No known bug matches; closest: {m.rule_id} (similar, NOT a match, score {m.score:.2f}): {m.title}."
        elif bug_tier == "cve":
            cve = next(iter(getattr(m, "cve", None) or ()), m.rule_id)
            bug = f"Known bug: possibly {cve} (candidate, score {m.score:.2f}): {m.title}."
        else:
            status = getattr(m, "status", "") or "hand-written"
            bug = f"Known bug: {m.rule_id} ({status} rule, score {m.score:.2f}): {m.title}."
        if not getattr(m, "similar", False):
            fixed_answer = getattr(m, "fixed_in_this_kernel", "unknown")
            word = {"yes": "has the fix", "no": "does NOT have the fix", "unknown": "may or may not have the fix"}
            commit = ((getattr(m, "fix", None) or {}).get("commit") or "")[:12]
            stable = [x[7:] for x in fixed_in if x.startswith("stable ")]
            rest = [x for x in fixed_in if not x.startswith("stable ")]
            shown = ", ".join(rest)
            if stable:
                shown += (" (" if shown else "") + "stable " + ", ".join(stable[:3])
                shown += (", ..." if len(stable) > 3 else "") + (")" if rest else "")
            fix_text = (
                f"Fix: {commit} in {shown}"
                if commit and shown
                else f"Fix: {commit or shown}"
                if commit or shown
                else ""
            )
            fix_text = (fix_text + "; " if fix_text else "") + (
                f"this kernel {word.get(fixed_answer, 'may or may not have the fix')} ({getattr(m, 'fixed_reason', '') or 'no release information'})."
            )
            target = _upgrade_target(c, m)
            wa = _workaround(m)
            if fixed_answer == "yes":
                action = "This kernel carries the fix: treat it as a different bug or a regression of it."
            else:
                bits = []
                if wa:
                    bits.append(wa)
                if target:
                    bits.append(f"upgrade to >= {target}")
                if bits:
                    action = "Do now: " + "; or ".join(bits) + "."
                if fixed_answer == "no" and not target and c.kernel.distro:
                    action = (action + " " if action else "") + f"No {c.kernel.distro} build with the fix is recorded."
    if candidate and m is not None and not getattr(m, "similar", False):
        # a generated candidate: its fix and workaround hold only if it is that bug
        name = next(iter(getattr(m, "cve", None) or ()), m.rule_id)
        fix_text = f"If it is {name}: " + fix_text[0].lower() + fix_text[1:] if fix_text else None
        action = action.replace("Do now: ", f"Do now, if it is {name}: ", 1) if action else None
    if action is None and (m is None or getattr(m, "similar", False)):
        action = "Do now: no known bug matches; search the title and guilty function on lore.kernel.org."

    next_step = _next_step(c, cr, m, candidate, member)
    lines = [what, why]
    if bug:
        lines.append(bug)
    if fix_text:
        lines.append(fix_text)
    if action:
        lines.append(action)
    if next_step:
        lines.append("Next: " + next_step + ".")
    if c.corrupted:
        lines.append("Caution: the report is incomplete (" + (c.corrupted_reason or "truncated or mangled") + ").")
    return Verdict(
        kind=c.kind,
        function=func,
        module=mod,
        fault_address=c.fault_address,
        bad_pointer=ptr,
        member=member_fact,
        what=what,
        why=why,
        confidence=confidence,
        bug_id=bug_id,
        bug_title=bug_title,
        bug_tier=bug_tier,
        bug_candidate=candidate,
        bug=bug,
        fixed_in_this_kernel=fixed_answer,
        fixed_in=fixed_in,
        fix=fix_text or None,
        action=action,
        next_step=next_step,
        lines=tuple(lines[:8]),
    )
