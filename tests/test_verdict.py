"""The verdict states the same conclusion as the full report under it, on real crashes.

Two kinds of check:
- consistency, on every real input at hand (the in-repo example and lab console logs always; the
  public crash reports of the shared material when present): the verdict's kind, function, member,
  known bug and fix status are those of the full JSON report, and the text report's verdict lines
  are the JSON verdict's lines;
- facts read by hand in the inputs (the line quoted next to each), so the conclusion is right and
  not only self-consistent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ktriage.kb.match import Match
from ktriage.model import Crash, CrashReport, Skipped, SourceSpan
from ktriage.pipeline import Options, analyze_paths
from ktriage.render.json_out import report_dict
from ktriage.render.text import render
from ktriage.verdict import best_match, compose, unlock_line
from realdata import FIXTURES, REPO, seed, seed_paths
from verdict_check import check_consistent

EXAMPLE = REPO / "examples" / "centos7-nf_conntrack-dmesg.txt"
LAB_LOGS = sorted((FIXTURES / "lab").glob("*.console.log")) + sorted((FIXTURES / "lab-arm64").glob("*.console.log"))
MAX_SEED_LINES = 60


def run(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "ktriage.cli", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def both(path: Path) -> tuple[list[dict[str, Any]], str]:
    """The JSON crashes and the default text report of one input, from one analysis (as the CLI renders them)."""
    rep = analyze_paths([str(path)], Options())
    return report_dict(rep)["crashes"], render(rep, color=False)


# --- consistency on every real input -----------------------------------------------------------


@pytest.mark.parametrize("path", [EXAMPLE, *LAB_LOGS], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_verdict_agrees_with_report_in_repo_inputs(path: Path) -> None:
    crashes, text = both(path)
    assert crashes
    check_consistent(crashes, text)


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.name[:3])
def test_verdict_agrees_with_report_public_reports(path: Path) -> None:
    crashes, text = both(path)
    check_consistent(crashes, text)
    assert len(text.splitlines()) <= MAX_SEED_LINES, f"{len(text.splitlines())} lines"


# --- facts read by hand --------------------------------------------------------------------------


def test_centos7_nf_conntrack_verdict() -> None:
    # "BUG: unable to handle kernel NULL pointer dereference at 0000000000000a30",
    # "IP: [<ffffffffc086077d>] nf_ct_deliver_cached_events+0x2d/0x110 [nf_conntrack]", "RAX: 0000000000000000";
    # the fix 56b14ecec97f (v5.19) is not in any CentOS 7 kernel through 3.10.0-1160.66.1.el7 (KB rule, cited).
    # through the command line, as a user runs it: `ktriage analyze --format json FILE` and `ktriage analyze FILE`
    crashes = json.loads(run("analyze", "--format", "json", str(EXAMPLE)))["crashes"]
    text = run("analyze", str(EXAMPLE))
    check_consistent(crashes, text)
    v = crashes[0]["verdict"]
    assert (v["kind"], v["function"], v["module"]) == ("null-deref", "nf_ct_deliver_cached_events", "nf_conntrack")
    assert v["member"] == "offset 0xa30"
    assert v["bad_pointer"].startswith("RAX = 0x0 (NULL)")
    assert v["bug"]["id"] == "nf-conntrack-clash-refetch" and v["fixed_in_this_kernel"] == "no"
    assert "nf_conntrack_events=0" in v["action"]  # the first workaround: conntrack events off
    assert v["next_step"].startswith("confirm it is nf-conntrack-clash-refetch")
    assert text.splitlines()[1] == "  verdict"  # the verdict comes first, right under the crash's title


def test_lab_null_member_verdict() -> None:
    # tests/fixtures/lab/null-member.console.log l.229 "BUG: kernel NULL pointer dereference, address:
    # 0000000000000a30", l.236 "Code: ... <48> 8b 80 30 0a 00 00" = mov 0xa30(%rax),%rax, l.238 "RAX: 0000000000000000"
    crashes, _ = both(FIXTURES / "lab" / "null-member.console.log")
    v = crashes[0]["verdict"]
    assert (v["kind"], v["function"], v["member"]) == ("null-deref", "crashmod_read_rx_count", "offset 0xa30")
    assert v["bad_pointer"] == "RAX = 0x0 (NULL)" and v["confidence"] == "certain"
    assert v["bug"] is None
    assert "give the vmlinux of 6.1.192" in v["next_step"]  # what names the member: the debug info


def test_lab_use_after_free_verdict() -> None:
    # uaf-poison l.227 "general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b",
    # l.233 "RDI: 6b6b6b6b6b6b6b6b": POISON_FREE, a pointer read from a freed object
    crashes, _ = both(FIXTURES / "lab" / "uaf-poison.console.log")
    v = crashes[0]["verdict"]
    assert (v["kind"], v["function"]) == ("gpf", "crashmod_obj_dispatch")
    assert v["bad_pointer"] == "RDI = 0x6b6b6b6b6b6b6b6b (POISON_FREE)"
    assert "freed memory" in v["what"]


@pytest.mark.parametrize(
    "prefix,kind,function,bug",
    [
        # 000 l.2 "NULL pointer dereference at 0000000000000a30" ... "nf_ct_deliver_cached_events+0x2d"
        ("000", "null-deref", "nf_ct_deliver_cached_events", "nf-conntrack-clash-refetch"),
        # 003 "[exception RIP: nf_queue+152]", PANIC: "BUG: unable to handle kernel NULL pointer dereference at (null)"
        ("003", "null-deref", "nf_queue", "nf-queue-gso-segment-null"),
        # 004 "#9 [...] page_fault", "#10 ... queued_write_lock_slowpath", "#11 ... bpf_sk_reuseport_detach"
        ("004", "paging-request", "bpf_sk_reuseport_detach", "nf-queue-request-sock-as-full-sock"),
    ],
)
def test_public_reports_verdict(prefix: str, kind: str, function: str, bug: str) -> None:
    crashes, text = both(seed(prefix))
    v = crashes[0]["verdict"]
    assert (v["kind"], v["function"], v["bug"]["id"], v["fixed_in_this_kernel"]) == (kind, function, bug, "no")
    assert len(text.splitlines()) <= MAX_SEED_LINES


def test_el8_upgrade_target_is_the_distro_build() -> None:
    # 004 runs 4.18.0-305.3.1.el8; the KB records the el8 fix in 4.18.0-373.el8 (RHSA cited in the rule)
    crashes, _ = both(seed("004"))
    assert "upgrade to >= 4.18.0-373.el8" in crashes[0]["verdict"]["action"]


# --- tiers: a generated CVE candidate never leads, never reads as verified ------------------------


def _match(rule_id: str, tier: str, score: float, similar: bool = False) -> Match:
    m = Match(
        rule_id=rule_id,
        title=f"title of {rule_id}",
        status="verified" if tier == "rules" else "generated",
        score=score,
        similar=similar,
        fixed_in_this_kernel="unknown",
        fixed_reason="no entry",
        fix={"commit": "0123456789abcdef", "mainline": "6.2"},
        cve=["CVE-2023-1234"] if tier == "cve" else [],
    )
    m.tier = tier  # type: ignore[attr-defined]  # the field the CVE tier adds to matches
    return m


def _report(*matches: Match) -> CrashReport:
    crash = Crash(kind="null-deref", title="BUG: x", source=SourceSpan("t", 1, 1), guilty_frame="f")
    return CrashReport(crash=crash, known_bugs=list(matches))


def test_hand_written_rule_leads_over_a_higher_scored_cve_candidate() -> None:
    cr = _report(_match("cve-2023-1234", "cve", 0.99), _match("hand-rule", "rules", 0.8))
    m, candidate = best_match(cr)
    assert m.rule_id == "hand-rule" and not candidate
    assert "Known bug: hand-rule (verified rule" in compose(cr).bug


def test_cve_candidate_alone_is_possibly_and_never_verified() -> None:
    v = compose(_report(_match("cve-2023-1234", "cve", 0.71)))
    assert v.bug == "Known bug: possibly CVE-2023-1234 (candidate, score 0.71): title of cve-2023-1234."
    assert v.bug_candidate and "verified" not in "\n".join(v.lines)
    # its fix and workaround hold only if it is that bug, and the verdict says so
    assert v.fix.startswith("If it is CVE-2023-1234: fix: 0123456789ab in v6.2")
    assert v.action == "Do now, if it is CVE-2023-1234: upgrade to >= 6.2."


def test_similar_rule_is_not_a_match() -> None:
    v = compose(_report(_match("near-rule", "rules", 0.6, similar=True)))
    assert v.bug.startswith("No known bug matches; closest: near-rule (similar, NOT a match")
    assert v.fixed_in_this_kernel is None


def test_unlock_line_names_the_input_that_unlocks_most() -> None:
    skipped = [Skipped(f"vmcore.{n}", "needs vmcore") for n in ("sys", "stack", "race")] + [
        Skipped("debuginfo", "needs the vmlinux of 6.1.0 with DWARF: looked in /boot"),
        Skipped("insn.decode", "no Code: line in the oops"),
    ]
    line = unlock_line(skipped)
    assert line is not None
    assert re.match(r"not analyzed: 5 analyzers; a vmcore would unlock 3; ", line)
    assert "debug info (the vmlinux of 6.1.0 with DWARF) would unlock 1" in line


def test_minimal_cve_candidate_renders_everywhere() -> None:
    """A generated candidate may carry fewer fields than a hand-written match: nothing fails, nothing says verified."""
    from types import SimpleNamespace

    from ktriage.model import Report
    from ktriage.render.html import render as render_html
    from ktriage.render.postmortem import render as render_postmortem

    cand = SimpleNamespace(
        kind="match", rule_id="cve-2024-0001", title="t", score=0.42, similar=False, tier="cve",
        cve=["CVE-2024-0001"], why="same guilty function", verified=False,
    )  # fmt: skip
    cr = _report()
    cr.known_bugs = [cand]
    v = compose(cr)
    assert v.bug == "Known bug: possibly CVE-2024-0001 (candidate, score 0.42): t." and v.bug_candidate
    doc = render_postmortem(Report(crashes=[cr]))
    assert "Why it was proposed: same guilty function" in doc and "generated candidate, not a verified match" in doc
    assert "verified rule" not in doc and "candidate" in render_html(Report(crashes=[cr]))


def test_verbose_lists_every_analyzer_not_run() -> None:
    short, full = run("analyze", str(EXAMPLE)), run("analyze", "-v", str(EXAMPLE))
    cr = analyze_paths([str(EXAMPLE)], Options()).crashes[0]
    assert "  not analyzed\n" not in short and "  not analyzed: " in short
    listed = full.split("  not analyzed\n")[1].splitlines()
    assert [line.split(":")[0].strip() for line in listed if line.startswith("    ")] == [
        s.analyzer for s in cr.skipped
    ]
    assert len(full.splitlines()) > len(short.splitlines())
