"""The post-mortem of one crash as a document model, rendered to Markdown (postmortem.py) and HTML (html.py).

One model, two renderings: the incident document a person pastes into a ticket or a wiki (summary,
impact, timeline, analysis step by step with its evidence, root cause, the fix and the releases that
carry it, workarounds with their costs, how to confirm, open questions) says the same in both
formats because both walk the same blocks. Everything comes from the Report model: the crash, its
findings, the known-bug match and the verdict; nothing is written per case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ktriage.model import KINDS, Crash, CrashReport
from ktriage.render.sections import grouped
from ktriage.verdict import Verdict, anchor_finding, best_match, compose, unlock_line

__all__ = ["Block", "Section", "crash_document", "sys_facts"]

COMMIT_URL = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id="


@dataclass(frozen=True)
class Block:
    """kind: "p" (text), "list" (items), "table" (header + rows), "code" (lines; `lang`), "kv" (rows of 2)."""

    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    header: tuple[str, ...] = ()
    lang: str = ""


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


def _p(text: str) -> Block:
    return Block("p", text=text)


def _list(items: Sequence[str]) -> Block:
    return Block("list", items=tuple(items))


def _code(lines: Sequence[str], lang: str = "") -> Block:
    return Block("code", items=tuple(lines), lang=lang)


_SYS_LINE = re.compile(r"^\s*([A-Z][A-Z ]+):\s+(.*\S)\s*$")


def sys_facts(c: Crash) -> dict[str, str]:
    """crash's `sys` facts: from a vmcore (Crash.system) or a pasted `sys` banner (a crash-sys event)."""
    facts = dict(c.system)
    for e in c.related_events:
        if e.kind == "crash-sys":
            for line in e.text.splitlines():
                m = _SYS_LINE.match(line)
                if m and m.group(1) not in facts:
                    facts[m.group(1)] = m.group(2)
    return facts


def _impact(c: Crash) -> Block:
    facts = sys_facts(c)
    k = c.kernel
    rows: list[tuple[str, str]] = []
    if facts.get("NODENAME"):
        rows.append(("host", facts["NODENAME"]))
    kern = ", ".join(x for x in (k.release, k.distro and f"distro {k.distro}", c.arch) if x)
    if kern:
        rows.append(("kernel", kern + (f" ({k.build})" if k.build else "")))
    if k.hardware or facts.get("MACHINE"):
        rows.append(("hardware", k.hardware or facts["MACHINE"]))
    for key, label in (("DATE", "time"), ("UPTIME", "uptime"), ("CPUS", "CPUs"), ("MEMORY", "memory")):
        if facts.get(key):
            rows.append((label, facts[key]))
    t = c.task
    if t.comm or t.pid is not None:
        rows.append(("task", f"{t.comm} (pid {t.pid}, CPU {t.cpu}), {c.context} context"))
    if c.panic:
        rows.append(("outcome", f"panic: {c.panic}"))
    if c.taint.flags:
        rows.append(
            ("taint", " ".join(c.taint.flags.split()) + ("; " + "; ".join(c.taint.decoded) if c.taint.decoded else ""))
        )
    rows.append(("kind", f"{c.kind} ({KINDS.get(c.kind, '')})"))
    rows.append(("bucket", c.bucket))
    rows.append(("source", f"{c.source.path} lines {c.source.first_line}-{c.source.last_line} ({c.source.format})"))
    return Block("kv", rows=tuple(rows))


def _timeline(c: Crash) -> Block:
    events: list[tuple[int, str]] = []
    for e in c.related_events:
        first = e.text.splitlines()[0] if e.text else ""
        events.append((e.line or 0, f"line {e.line}: {e.kind}: `{first.strip()}`"))
    events.append((c.source.first_line, f"line {c.source.first_line}: the crash report begins: `{c.title}`"))
    if c.panic:
        events.append((c.source.last_line, f"line {c.source.last_line}: `{c.panic}`"))
    elif c.source.last_line != c.source.first_line:
        events.append((c.source.last_line, f"line {c.source.last_line}: the crash report ends"))
    if c.corrupted:
        events.append((c.source.last_line, f"the report is incomplete: {c.corrupted_reason or 'truncated or mangled'}"))
    return _list([text for _, text in sorted(events, key=lambda x: x[0])])


def _analysis(cr: CrashReport) -> list[Section]:
    out: list[Section] = []
    c = cr.crash
    for n, (title, fs) in enumerate(grouped(cr.findings), 1):
        sec = Section(f"Step {n}: {title.lower()}", level=3)
        for f in fs:
            sec.blocks.append(_p(f"**{f.summary}** ({f.confidence}; `{f.code}`)"))
            if f.evidence:
                sec.blocks.append(_list(f.evidence))
            if f.listing:
                sec.blocks.append(_code(f.listing, "asm"))
        out.append(sec)
    if c.registers:
        regs = [f"{k.upper():>6}: {v:#018x}" for k, v in c.registers.items()]
        out.append(
            Section("Registers at the fault", [_code([" ".join(regs[i : i + 3]) for i in range(0, len(regs), 3)])], 3)
        )
    if c.frames:
        out.append(
            Section(
                "Call trace",
                [
                    _code(
                        [
                            ("  " if f.reliable else "? ")
                            + str(f)
                            + (f" <{f.section}>" if f.section != "task" else "")
                            + ("  (interrupted here)" if f.interrupted else "")
                            for f in c.frames
                        ]
                    )
                ],
                3,
            )
        )
    return out


def _get(m: Any, name: str) -> list[Any]:
    """A list field of a match; tolerant of match kinds that lack it (generated candidates)."""
    return list(getattr(m, name, None) or ())


def _root_cause(cr: CrashReport, v: Verdict) -> list[Block]:
    m, candidate = best_match(cr)
    blocks = [_p(v.what)]
    anchor, source = anchor_finding(cr.findings)
    if anchor is not None:
        blocks.append(_p(f"The strongest evidence ({source}): {anchor.summary}"))
    if m is None:
        blocks.append(_p("No known bug in the knowledge base matches this crash."))
        return blocks
    if getattr(m, "similar", False):
        blocks.append(_p(v.bug or ""))
        blocks.append(
            _list([f"differs: {x}" for x in _get(m, "missed")] + [f"matched: {x}" for x in _get(m, "matched")])
        )
        return blocks
    head = v.bug or ""
    blocks.append(_p(head))
    if getattr(m, "summary", ""):
        blocks.append(_p(" ".join(str(m.summary).split())))
    if getattr(m, "why", None):  # generated candidates say why they were proposed
        blocks.append(_p(f"Why it was proposed: {m.why}"))
    blocks.append(_list([f"matched: {x}" for x in _get(m, "matched")] + [f"missed: {x}" for x in _get(m, "missed")]))
    if candidate:
        blocks.append(
            _p("This is a generated candidate, not a verified match: check it against the fix before acting.")
        )
    return blocks


def _fix(cr: CrashReport, v: Verdict) -> list[Block]:
    m, _ = best_match(cr)
    if m is None or getattr(m, "similar", False):
        return [_p("No fix is known for this crash.")]
    fix: dict[str, Any] = getattr(m, "fix", None) or {}
    rows: list[tuple[str, str]] = []
    if fix.get("commit"):
        rows.append(
            ("commit", f"[`{fix['commit'][:12]}`]({COMMIT_URL}{fix['commit']}) {fix.get('subject') or ''}".strip())
        )
    if fix.get("mainline"):
        rows.append(("mainline", f"v{fix['mainline']}"))
    if fix.get("stable"):
        rows.append(("stable", ", ".join(map(str, fix["stable"]))))
    if fix.get("fixes"):
        rows.append(
            ("introduced by", f"{fix['fixes']}" + (f" (v{fix['fixes_release']})" if fix.get("fixes_release") else ""))
        )
    for d in _get(m, "distros") or ():
        if isinstance(d, dict):
            state = (
                f"fixed in {d['fixed_in']}" if d.get("fixed_in") else f"not fixed through {d.get('not_fixed_through')}"
            )
            rows.append((f"{d.get('distro')}", state + (f" — {d['reference']}" if d.get("reference") else "")))
    if _get(m, "cve"):
        rows.append(("CVE", ", ".join(_get(m, "cve"))))
    word = {"yes": "has the fix", "no": "does NOT have the fix", "unknown": "unknown"}.get(
        getattr(m, "fixed_in_this_kernel", "unknown"), "unknown"
    )
    rows.append(("this kernel", f"{word}: {getattr(m, 'fixed_reason', '')}"))
    blocks = [Block("kv", rows=tuple(rows))]
    if _get(m, "references"):
        blocks.append(_list([f"<{r}>" if str(r).startswith("http") else str(r) for r in _get(m, "references")]))
    return blocks


def _workarounds(cr: CrashReport) -> list[Block]:
    m, _ = best_match(cr)
    ws = [w for w in (getattr(m, "workarounds", None) or ()) if isinstance(w, dict)] if m is not None else []
    if not ws or getattr(m, "similar", False):
        return [_p("None known.")]
    rows = tuple(
        (
            str(w.get("title") or ""),
            "`" + " ".join(str(w.get("how") or "").split()) + "`",
            " ".join(str(w.get("cost") or "").split()),
            "yes" if w.get("reboot") else "no",
        )
        for w in ws
    )
    return [Block("table", header=("workaround", "how", "cost", "reboot"), rows=rows)]


def _confirm(cr: CrashReport) -> list[Block]:
    m, _ = best_match(cr)
    probe = (getattr(m, "probe", None) or {}) if m is not None and not getattr(m, "similar", False) else {}
    blocks: list[Block] = []
    for tool in ("bpftrace", "systemtap"):
        if probe.get(tool):
            blocks.append(_p(f"With {tool}, on a host that runs the same workload:"))
            blocks.append(_code(str(probe[tool]).rstrip().splitlines(), "stap" if tool == "systemtap" else ""))
    return blocks or [_p("No probe is known; the open questions below say what would confirm it.")]


def _open_questions(cr: CrashReport, v: Verdict) -> list[str]:
    c = cr.crash
    qs: list[str] = []
    if v.next_step:
        qs.append("Next step: " + v.next_step + ".")
    if (v.member is None or v.member.startswith("offset ")) and c.kind in ("null-deref", "paging-request", "gpf"):
        qs.append("Which member and which source line faulted (needs the kernel's debug info).")
    if v.bug_candidate:
        qs.append("Whether the candidate known bug is really this one.")
    if v.bug_id is None:
        qs.append("Which bug this is: no rule in the knowledge base matches.")
    if v.fixed_in_this_kernel == "unknown":
        qs.append("Whether this kernel carries the fix (no release information decides it).")
    if c.corrupted:
        qs.append(f"The report is incomplete ({c.corrupted_reason or 'truncated'}): the missing lines may hold more.")
    line = unlock_line(cr.skipped)
    if line:
        qs.append(line[0].upper() + line[1:] + ".")
        qs += [  # the inputs that would unlock more; "not applicable" skips are in the JSON and -v
            f"{s.analyzer}: {s.reason if len(s.reason) <= 240 else s.reason[:237] + '...'}"
            for s in cr.skipped
            if s.analyzer == "debuginfo" or "Code:" in s.reason or s.reason.startswith("needs ")
            if not s.reason.startswith("needs vmcore")
        ][:6]
    return qs


def crash_document(cr: CrashReport) -> tuple[str, list[Section]]:
    """(title, sections) of one crash's post-mortem."""
    c = cr.crash
    v = compose(cr)
    sections = [
        Section("Summary", [_list(v.lines)]),
        Section("Impact", [_impact(c)]),
        Section("Timeline (from the log)", [_timeline(c)]),
        Section("Analysis", [_p("Each step gives the claim, then the evidence it rests on.")]),
        *_analysis(cr),
        Section("Root cause", _root_cause(cr, v)),
        Section("The fix", _fix(cr, v)),
        Section("Workarounds", _workarounds(cr)),
        Section("How to confirm", _confirm(cr)),
        Section("Open questions", [_list(_open_questions(cr, v) or ["None."])]),
    ]
    return f"Post-mortem: {c.title}", sections
