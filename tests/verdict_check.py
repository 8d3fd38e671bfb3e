"""Checks that a verdict states the same conclusion as the full report under it (tests/test_verdict.py,
tests/lab/test_lab_verdict.py)."""

from __future__ import annotations

from typing import Any


def text_verdicts(text: str) -> list[list[str]]:
    """The verdict lines of each crash in the text report (between 'verdict' and the first fact)."""
    out: list[list[str]] = []
    cur: list[str] | None = None
    for line in text.splitlines():
        if line == "  verdict":
            cur = []
            out.append(cur)
        elif cur is not None and line.startswith("    "):
            cur.append(line[4:])
        else:
            cur = None
    return out


def check_consistent(crashes: list[dict[str, Any]], text: str) -> None:
    assert [c["verdict"]["lines"] for c in crashes] == text_verdicts(text)
    for c in crashes:
        v = c["verdict"]
        assert 2 <= len(v["lines"]) <= 8
        assert v["kind"] == c["kind"]
        assert v["function"] == (c["guilty_frame"] or (c["ip"] or {}).get("symbol"))
        if v["function"]:
            assert v["function"] in v["what"]
        # the member as the vmcore names it (the whole chain, sk->reuse_cb->count), else as the debug info does
        members = [f["data"]["expression"] for f in c["findings"] if f["code"] == "vmcore.member"]
        members += [f["data"]["expression"] for f in c["findings"] if f["code"] == "src.fault-member"]
        if members:
            assert v["member"] == members[0] and members[0] in v["what"]
        full = [m for m in c["known_bugs"] if m.get("kind") == "match" and not m["similar"]]
        rules = [m for m in full if m.get("tier", "rules") != "cve"]
        if rules:
            top = max(rules, key=lambda m: m["score"])
            assert v["bug"]["id"] == top["id"] and not v["bug"]["candidate"]
            assert v["fixed_in_this_kernel"] == top["fixed_in_this_kernel"]
            if top["fix"].get("mainline"):
                assert f"v{top['fix']['mainline']}" in v["fixed_in"]
            assert top["id"] in "\n".join(v["lines"])
            if top["fixed_in_this_kernel"] == "no":
                assert "does NOT have the fix" in "\n".join(v["lines"])
        elif not full:
            assert v["bug"] is None or v["bug"]["candidate"]
