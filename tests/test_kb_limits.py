"""User knowledge-base files cannot hang or exhaust ktriage (issue 19): YAML aliases are refused (an alias
bomb grew `kb lint` to 4-7 GB), patterns must compile with RE2 (a `(a+)+$` rule hung every analysis that
loaded it under Python's backtracking engine), and rule files have a size limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ktriage.kb import load_rule_file
from realdata import REPO

GOOD = (REPO / "src/ktriage/kb/bugs/nf-conntrack-clash-refetch.yaml").read_text()

BOMB = """id: bomb
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_packaged_rule_still_loads() -> None:
    rule, errors = load_rule_file(GOOD, "good.yaml", "packaged")
    assert errors == [] and rule is not None
    assert rule.events or rule.title_re is not None or rule.frames


def test_alias_bomb_refused() -> None:
    rule, errors = load_rule_file(BOMB, "bomb.yaml", "user")
    assert rule is None
    assert "alias *a is not allowed" in str(errors[0])


def test_catastrophic_pattern_is_a_lint_error_with_reason() -> None:
    text = GOOD.replace("title_regex: null", "title_regex: '(?<=x)(a+)+$'")
    rule, errors = load_rule_file(text, "la.yaml", "user")
    assert rule is None
    assert any("not accepted by RE2" in str(e) and "signature.title_regex" in str(e) for e in errors), errors


def test_exponential_pattern_runs_linear_under_re2() -> None:
    """`(a+)+$` is valid RE2: it loads, and matching it on a long line of `a`s ending in `!` is instant."""
    text = GOOD.replace("title_regex: null", "title_regex: '(a+)+$'")
    rule, errors = load_rule_file(text, "ok.yaml", "user")
    assert errors == [] and rule is not None
    assert rule.title_re.search("a" * 50000 + "!") is None


def test_huge_rule_file_refused() -> None:
    rule, errors = load_rule_file("id: x\n" + "#" * (1 << 20), "big.yaml", "user")
    assert rule is None and "not read" in str(errors[0])


def test_kb_lint_and_analyze_on_a_bomb_dir(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "KTRIAGE_CACHE_DIR": "off"}
    p = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "kb", "lint", "--kb", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert p.returncode != 0 and "alias" in p.stdout + p.stderr
    log = REPO / "tests/fixtures/lab/null-member.console.log"
    p = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", "--kb", str(tmp_path), str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert "alias" in p.stdout
