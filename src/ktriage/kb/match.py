"""Matching a Crash against the rules: a score, what matched and what did not, full match vs similar."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ktriage.kb.fixed import Verdict, fixed_verdict
from ktriage.kb.rules import Rule, RuleSet, cached_rules
from ktriage.model import Crash

# How much each part of a signature weighs in the score (only parts the rule uses count).
WEIGHTS = {"kinds": 1.5, "guilty": 2.5, "frames": 3.5, "any_frames": 1.0, "title_regex": 1.0, "related_events": 1.0}
SIMILAR_MIN_SCORE = 0.5
MAX_SIMILAR = 3


def _norm(name: str) -> str:
    from ktriage.logs.frames import normalize

    return normalize(name)


def _mod(m: str | None) -> str | None:
    return m.replace("-", "_") if m else None


def crash_stack(crash: Crash) -> list[tuple[str, str | None]]:
    """The faulting function then every frame (reliable or not), names normalized, with modules."""
    seq: list[tuple[str, str | None]] = []
    if crash.ip is not None and crash.ip.symbol:
        seq.append((_norm(crash.ip.symbol), _mod(crash.ip.module)))
    for i, f in enumerate(crash.frames):
        if not f.symbol:
            continue
        n = _norm(f.symbol)
        if i == 0 and seq and seq[0][0] == n:
            continue
        seq.append((n, _mod(f.module)))
    return seq


def _frame_eq(spec: Any, got: tuple[str, str | None]) -> bool:
    if spec.function != got[0]:
        return False
    return spec.module is None or got[1] is None or _mod(spec.module) == got[1]


def ordered_frames(specs: Sequence[Any], stack: Sequence[tuple[str, str | None]]) -> int:
    """How many of the rule's frames appear in order in the stack (longest common subsequence)."""
    n = len(specs)
    prev = [0] * (n + 1)
    for got in stack:
        cur = [0] * (n + 1)
        for i in range(1, n + 1):
            cur[i] = prev[i - 1] + 1 if _frame_eq(specs[i - 1], got) else max(prev[i], cur[i - 1])
        prev = cur
    return prev[n]


@dataclass
class Match:
    """One rule against one crash: what the user needs to act on it."""

    rule_id: str
    title: str
    status: str
    score: float
    similar: bool
    matched: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    fixed_in_this_kernel: str = "unknown"  # yes, no, unknown
    fixed_reason: str = ""
    fixed_basis: str = ""
    fix: dict[str, Any] = field(default_factory=dict)
    distros: list[dict[str, Any]] = field(default_factory=list)
    cve: list[str] = field(default_factory=list)
    workarounds: list[dict[str, Any]] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)
    summary: str = ""
    subsystem: str = ""
    rule_path: str = ""
    rule_origin: str = ""

    kind = "match"

    @property
    def full(self) -> bool:
        return not self.similar

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "similar" if self.similar else "match",
            "tier": "rules",
            "verified": not self.similar,
            "id": self.rule_id,
            "title": self.title,
            "status": self.status,
            "score": round(self.score, 3),
            "similar": self.similar,
            "matched": list(self.matched),
            "missed": list(self.missed),
            "fixed_in_this_kernel": self.fixed_in_this_kernel,
            "fixed_reason": self.fixed_reason,
            "fixed_basis": self.fixed_basis,
            "fix": dict(self.fix),
            "distros": [dict(d) for d in self.distros],
            "cve": list(self.cve),
            "workarounds": [dict(w) for w in self.workarounds],
            "probe": dict(self.probe),
            "references": list(self.references),
            "summary": self.summary,
            "subsystem": self.subsystem,
            "rule": {"path": self.rule_path, "origin": self.rule_origin},
        }

    # ------------------------------------------------------------------------------ display

    def fix_line(self) -> str | None:
        if not self.fix.get("commit") and not self.fix.get("mainline"):
            return None
        commit = (self.fix.get("commit") or "")[:12]
        where = []
        if self.fix.get("mainline"):
            where.append(f"v{self.fix['mainline']}")
        if self.fix.get("stable"):
            where.append("stable " + ", ".join(self.fix["stable"]))
        s = "fix: " + " ".join(x for x in (commit, self.fix.get("subject") or "") if x)
        if where:
            s += f" ({'; '.join(where)})"
        if self.cve:
            s += " [" + ", ".join(self.cve) + "]"
        return s

    def kernel_line(self) -> str:
        word = {"yes": "fixed", "no": "NOT fixed", "unknown": "unknown"}.get(self.fixed_in_this_kernel, "unknown")
        return f"this kernel: {word} — {self.fixed_reason}"

    def probe_command(self) -> str | None:
        bt = (self.probe or {}).get("bpftrace")
        if bt:
            lines = [ln.strip() for ln in str(bt).strip().splitlines()]
            lines = [ln for ln in lines if ln and not ln.startswith("//")]
            one = " ".join(lines)
            if len(one) <= 220 and "//" not in one and "/*" not in one:
                return "bpftrace -e '" + one.replace("'", "'\\''") + "'"
            return f"bpftrace probe: see `ktriage kb show {self.rule_id}`"
        if (self.probe or {}).get("systemtap"):
            return f"systemtap probe: see `ktriage kb show {self.rule_id}`"
        return None

    def _workaround_text(self, w: dict[str, Any]) -> str:
        s = str(w.get("how") or w.get("title") or "")
        extra = []
        if w.get("cost"):
            extra.append(f"cost: {w['cost']}")
        if w.get("reboot"):
            extra.append("needs a reboot")
        return s + (f" ({'; '.join(extra)})" if extra else "")

    def text_lines(self) -> list[str]:
        if self.similar:
            out = [
                f"similar, NOT a match: {self.rule_id} ({self.status}, score {self.score:.2f}): {self.title}",
                "  differs: " + "; ".join(self.missed),
            ]
            fl = self.fix_line()
            if fl:
                out.append("  " + fl)
            return out
        out = [f"{self.rule_id} ({self.status}, score {self.score:.2f}): {self.title}"]
        fl = self.fix_line()
        if fl:
            out.append(fl)
        out.append(self.kernel_line())
        for w in self.workarounds[:2]:
            out.append("workaround: " + self._workaround_text(w))
        if len(self.workarounds) > 2:
            out.append(f"  (+{len(self.workarounds) - 2} more workarounds: ktriage kb show {self.rule_id})")
        pc = self.probe_command()
        if pc:
            out.append("confirm: " + pc)
        return out

    def markdown_lines(self) -> list[str]:
        url = ""
        if self.fix.get("commit"):
            url = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=" + self.fix["commit"]
        if self.similar:
            out = [
                f"- Similar, **not a match**: `{self.rule_id}` ({self.status}, score {self.score:.2f}): {self.title}",
                f"  - differs: {'; '.join(self.missed)}",
            ]
            if self.matched:
                out.append(f"  - matched: {'; '.join(self.matched)}")
            return out
        out = [f"- **`{self.rule_id}`** ({self.status}, score {self.score:.2f}): {self.title}"]
        fl = self.fix_line()
        if fl:
            commit = (self.fix.get("commit") or "")[:12]
            if url and commit:
                fl = fl.replace(commit, f"[`{commit}`]({url})", 1)
            out.append(f"  - {fl}")
        word = {"yes": "fixed", "no": "**not fixed**", "unknown": "unknown"}.get(self.fixed_in_this_kernel)
        out.append(f"  - this kernel: {word} — {self.fixed_reason}")
        out.append(
            f"  - matched: {'; '.join(self.matched)}" + (f"; missed: {'; '.join(self.missed)}" if self.missed else "")
        )
        if self.summary:
            out.append(f"  - {' '.join(self.summary.split())}")
        for w in self.workarounds:
            out.append(
                f"  - workaround: {w.get('title', '')}: `{w.get('how', '')}`"
                + (f" (cost: {w['cost']})" if w.get("cost") else "")
                + (" (needs a reboot)" if w.get("reboot") else "")
            )
        for tool in ("bpftrace", "systemtap"):
            script = (self.probe or {}).get(tool)
            if script:
                out += [f"  - confirm with {tool}:", "", f"    ```{'' if tool == 'bpftrace' else 'stap'}"]
                out += ["    " + line for line in str(script).rstrip().splitlines()]
                out += ["    ```", ""]
        if self.references:
            out.append("  - references: " + ", ".join(f"<{r}>" if r.startswith("http") else r for r in self.references))
        return out


@dataclass
class KBNote:
    """A knowledge-base problem to show with the results (a rule file that did not load)."""

    message: str
    kind = "note"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "note", "note": self.message}

    def text_lines(self) -> list[str]:
        return [f"note: {self.message}"]

    def markdown_lines(self) -> list[str]:
        return [f"- note: {self.message}"]


def evaluate(rule: Rule, crash: Crash, stack: list[tuple[str, str | None]] | None = None) -> Match:
    """Score one rule against one crash (always returns; `similar`/score say how good it is).

    A bug takes several forms (a NULL dereference on production kernels, a KASAN use-after-free on
    fuzzing ones): when the main signature does not match, each of `signature.forms` is tried."""
    stack = crash_stack(crash) if stack is None else stack
    m = _evaluate_one(rule, crash, stack)
    if m.similar:
        for name, form in rule.forms:
            fm = _evaluate_one(form, crash, stack)
            if not fm.similar:
                fm.matched.insert(0, f"form: {name}")
                return fm
    return m


def _evaluate_one(rule: Rule, crash: Crash, stack: list[tuple[str, str | None]]) -> Match:
    names = {n for n, _ in stack}
    parts: dict[str, float] = {}
    matched: list[str] = []
    missed: list[str] = []
    required_ok = True

    if rule.kinds:
        ok = crash.kind in rule.kinds
        parts["kinds"] = 1.0 if ok else 0.0
        (matched if ok else missed).append(f"kind {crash.kind}" + ("" if ok else f" not in {', '.join(rule.kinds)}"))
        required_ok &= ok
    if rule.guilty:
        cands = [c for c in ((crash.guilty_frame or ""), (crash.ip.symbol if crash.ip else "") or "") if c]
        hit = next((c for c in cands if _norm(c) in rule.guilty), None)
        parts["guilty"] = 1.0 if hit else 0.0
        if hit:
            matched.append(f"guilty {_norm(hit)}")
        else:
            missed.append(f"guilty {crash.guilty_frame or '?'} not in {', '.join(rule.guilty)}")
        required_ok &= bool(hit)
    if rule.frames:
        got = ordered_frames(rule.frames, stack)
        parts["frames"] = got / len(rule.frames)
        chain = " > ".join(str(f) for f in rule.frames)
        if got == len(rule.frames):
            matched.append(f"frames {chain}")
        else:
            absent = [str(f) for f in rule.frames if f.function not in names]
            missed.append(
                f"frames {got}/{len(rule.frames)} in order of {chain}"
                + (f" (absent: {', '.join(absent)})" if absent else "")
            )
            required_ok = False
    if rule.any_frames:
        hits = [f for f in rule.any_frames if f in names]
        parts["any_frames"] = 1.0 if hits else 0.0
        if hits:
            matched.append(f"frame {hits[0]}")
        else:
            missed.append(f"none of {', '.join(rule.any_frames)} in the trace")
        required_ok &= bool(hits)
    if rule.title_re is not None:
        ok = bool(rule.title_re.search(crash.title or ""))
        parts["title_regex"] = 1.0 if ok else 0.0
        (matched if ok else missed).append(f"title /{rule.title_re.pattern}/")
        required_ok &= ok
    if rule.events:
        texts = [e.text for e in crash.related_events] + list(crash.lines)
        hits = [rx.pattern for rx in rule.events if any(rx.search(t) for t in texts)]
        parts["related_events"] = len(hits) / len(rule.events)
        for h in hits:
            matched.append(f"event /{h}/")
        events_required = not (rule.frames or rule.guilty or rule.title_re is not None)
        if events_required:
            if not hits:
                missed.append("no related log line matches " + ", ".join(f"/{rx.pattern}/" for rx in rule.events))
            required_ok &= bool(hits)

    total = sum(WEIGHTS[k] for k in parts)
    score = sum(WEIGHTS[k] * v for k, v in parts.items()) / total if total else 0.0

    verdict: Verdict = fixed_verdict(rule, crash.kernel)
    if verdict.affected is False:
        missed.append(f"kernel: {verdict.reason}")
        required_ok = False
        score *= 0.8

    d = rule.data
    return Match(
        rule_id=rule.id,
        title=rule.title,
        status=rule.status,
        score=score,
        similar=not required_ok,
        matched=matched,
        missed=missed,
        fixed_in_this_kernel=verdict.answer,
        fixed_reason=verdict.reason,
        fixed_basis=verdict.basis,
        fix=dict(rule.fix),
        distros=[dict(x) for x in d.get("distros") or []],
        cve=list(d.get("cve") or []),
        workarounds=[dict(w) for w in d.get("workarounds") or []],
        probe=dict(d.get("probe") or {}),
        references=list(d.get("references") or []),
        summary=str(d.get("summary") or "").strip(),
        subsystem=str(d.get("subsystem") or ""),
        rule_path=rule.path,
        rule_origin=rule.origin,
    )


def _is_similar_enough(m: Match, rule: Rule, crash: Crash) -> bool:
    """A near miss worth showing: the stack (or guilty function) agrees, only some other part differs."""
    if m.score < SIMILAR_MIN_SCORE:
        return False
    if rule.frames:
        got = ordered_frames(rule.frames, crash_stack(crash))
        if got >= 2 and got / len(rule.frames) >= 0.5:  # one shared caller (ixgbe_poll) is not enough
            return True
    return any(p.startswith("guilty ") for p in m.matched)


def match_rules(
    crash: Crash, rules: Iterable[Rule], errors: list[KBNote] | None = None
) -> tuple[list[Match], list[Match]]:
    """(full matches, similar ones), each sorted by score, best first."""
    stack = crash_stack(crash)
    full, similar = [], []
    errors = [] if errors is None else errors
    for rule in rules:
        try:
            m = evaluate(rule, crash, stack)
        except Exception as e:  # a rule is user data: one bad rule must not stop the analysis
            errors.append(KBNote(f"known-bug rule {rule.path} could not be evaluated: {type(e).__name__}: {e}"))
            continue
        if not m.similar:
            full.append(m)
        elif _is_similar_enough(m, rule, crash):
            similar.append(m)
    key = lambda m: (-m.score, m.rule_id)  # noqa: E731
    return sorted(full, key=key), sorted(similar, key=key)[:MAX_SIMILAR]


def match_crash(
    crash: Crash,
    findings: Sequence[Any] = (),
    kb_dirs: Iterable[str] = (),
    rules: RuleSet | None = None,
    changelog: str | None = None,
) -> list[Any]:
    """Known bugs for a crash: full matches (best first), then near misses flagged `similar=True`,
    then at most a few candidates from the CVE records (tier "cve", unverified; kb/cve_match.py), then
    one KBNote per rule file that failed to load (so the run goes on and says why).

    `findings` is accepted for rules keyed on analyzer findings; the version-1 format does not use them."""
    rs = rules if rules is not None else cached_rules(tuple(kb_dirs or ()))
    errors: list[KBNote] = []
    full, similar = match_rules(crash, rs, errors)
    cands = _cve_candidates(crash, full, errors)
    _ask_changelog(crash, [*full, *cands], changelog, errors)
    out: list[Any] = [*full, *similar, *cands, *errors]
    out += [KBNote(f"known-bug rule not loaded: {e}") for e in rs.errors]
    out += [KBNote(n) for n in rs.notes]
    return out


def _cve_candidates(crash: Crash, full: list[Match], errors: list[KBNote]) -> list[Any]:
    """The generated tier, after the rules: never a CVE a matched rule already names."""
    from ktriage.kb.cve_match import match_cve
    from ktriage.kb.cve_store import store

    st = store()
    try:
        # after a verified match, one candidate at most: the rule is the answer, the rest is a lead
        limit = 1 if full else 3
        same = [c for m in full for c in m.cve]
        commits = {str(m.fix.get("commit") or "")[:12] for m in full} - {""}
        if commits:  # a rule that does not name its CVE: the record with the same fix commit is the same bug
            same += [e["id"] for e in st.with_commits(commits)]
        return list(match_cve(crash, exclude=same, st=st, limit=limit))
    except Exception as e:  # noqa: BLE001 - the generated tier is an extra: it never costs the rules' answer
        errors.append(KBNote(f"CVE knowledge base not used: {type(e).__name__}: {e}"))
        return []
    finally:
        if st.error:
            errors.append(KBNote(st.error))


def _ask_changelog(crash: Crash, found: list[Any], path: str | None, errors: list[KBNote]) -> None:
    """Distro kernels keep their version while backporting fixes: the package changelog (given, or the
    installed one when the crash is from this machine's kernel) says whether this build lists the fix."""
    if not found or (path is None and crash.kernel.release != _running_release()):
        return
    from ktriage.kb.changelog import ChangelogError, changelog_for, find_fix

    try:
        cl = changelog_for(crash.kernel.release, path)
    except ChangelogError as e:
        errors.append(KBNote(str(e)))
        return
    if cl is None:
        return
    from ktriage.kb.changelog import mismatch

    warn = mismatch(cl, crash.kernel.release)
    if warn:
        errors.append(KBNote(warn))
    for m in found:
        if isinstance(m, Match):
            hit = find_fix(cl, str(m.fix.get("subject") or m.title), list(m.cve))
            if hit.answer == "yes":
                m.fixed_in_this_kernel, m.fixed_reason, m.fixed_basis = "yes", hit.text, f"changelog:{cl.kind}"
            elif m.fixed_in_this_kernel != "no":
                m.fixed_reason = f"{m.fixed_reason}; {hit.text}"
        else:
            m.ask_changelog(cl)


def _running_release() -> str:
    import os

    return os.uname().release
