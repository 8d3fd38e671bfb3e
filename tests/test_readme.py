"""The README's first lines quote ktriage's real output: checked here so that they never drift."""

from __future__ import annotations

import re
import subprocess
import sys

from realdata import REPO


def test_readme_verdict_excerpt_is_real_output() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- verdict-excerpt.*?```text\n(.*?)```", readme, re.S)
    assert block, "README lost its verdict excerpt"
    out = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", str(REPO / "examples" / "centos7-nf_conntrack-dmesg.txt")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.splitlines()
    excerpt = block.group(1).rstrip("\n").splitlines()
    start = out.index(excerpt[0])
    assert out[start : start + len(excerpt)] == excerpt
