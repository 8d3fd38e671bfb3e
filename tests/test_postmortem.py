"""`--format postmortem` and `--format html` on real crashes: the incident document's sections, in order,
with the facts of the report; the HTML is one self-contained file with the same content."""

from __future__ import annotations

import html
import re
import subprocess
import sys

from ktriage.pipeline import Options, analyze_paths
from ktriage.render.html import crash_fragment
from ktriage.verdict import compose
from realdata import FIXTURES, REPO, seed

EXAMPLE = REPO / "examples" / "centos7-nf_conntrack-dmesg.txt"
SECTIONS = [
    "Summary",
    "Impact",
    "Timeline (from the log)",
    "Analysis",
    "Root cause",
    "The fix",
    "Workarounds",
    "How to confirm",
    "Open questions",
]


def run(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "ktriage.cli", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_postmortem_sections_and_facts() -> None:
    doc = run("analyze", "--format", "postmortem", str(EXAMPLE))
    heads = [h for h in re.findall(r"^## (.+)$", doc, re.M)]
    assert heads == SECTIONS
    # the log: "CPU: 1 PID: 5027 Comm: Verdict3 Kdump: loaded Tainted: G OE"
    assert "| task | Verdict3 (pid 5027, CPU 1), process context |" in doc
    # the KB rule's fix (56b14ecec97f, v5.19) with its link, and all of its workarounds with their costs
    assert "[`56b14ecec97f`](https://git.kernel.org/" in doc and "| mainline | v5.19 |" in doc
    table = doc.split("## Workarounds")[1].split("## How to confirm")[0]
    assert len([r for r in table.splitlines() if r.startswith("| ") and "---" not in r]) - 1 == 7
    assert "kprobe:nf_ct_resolve_clash" in doc.split("## How to confirm")[1]
    # the analysis shows the evidence: the registers and the NULL base
    assert "R15: 0x0000000000000000" in doc and "CR2: 0x0000000000000a30" in doc
    # the summary is the verdict, line for line
    cr = analyze_paths([str(EXAMPLE)], Options()).crashes[0]
    summary = doc.split("## Summary")[1].split("## Impact")[0]
    assert [l[2:] for l in summary.strip().splitlines()] == list(compose(cr).lines)


def test_postmortem_crash_output_impact_from_sys_banner() -> None:
    # 003's `sys`: "NODENAME: web_yp_49_202.mobileztgame", "DATE: Tue Oct 31 11:53:41 2017", "UPTIME: 342 days, 12:15:26"
    doc = run("analyze", "--format", "postmortem", str(seed("003")))
    assert "| host | web_yp_49_202.mobileztgame |" in doc
    assert "| time | Tue Oct 31 11:53:41 2017 |" in doc and "| uptime | 342 days, 12:15:26 |" in doc


def test_postmortem_lab_log_without_known_bug() -> None:
    doc = run("analyze", "--format", "postmortem", str(FIXTURES / "lab" / "null-member.console.log"))
    assert "No known bug in the knowledge base matches this crash." in doc
    # the Code: line decoded: the trap instruction is in the analysis (l.236 "<48> 8b 80 30 0a 00 00")
    assert "mov 0xa30(%rax),%rax" in doc
    assert "Which member and which source line faulted" in doc


def test_html_is_self_contained_and_carries_the_same_content() -> None:
    page = run("analyze", "--format", "html", str(EXAMPLE))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # nothing is fetched: no scripts, stylesheets, images, frames or remote fonts
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(", page, re.I)
    assert not re.search(r"\ssrc=", page)
    for head in SECTIONS:
        assert f">{html.escape(head)}</h2>" in page
    assert "56b14ecec97f" in page and "kprobe:nf_ct_resolve_clash" in page
    cr = analyze_paths([str(EXAMPLE)], Options()).crashes[0]
    frag = crash_fragment(cr)
    assert frag.startswith('<article class="ktriage-crash">') and frag in page
    # the trace is a readable preformatted block, one frame per line
    assert "\n  nf_iterate+0x98/0xe0\n" in page
