"""Every packaged known-bug rule is valid and proven: its real positive example matches it fully,
its real near-miss negative does not. `ktriage kb lint` agrees (exit 0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ktriage.kb import Match, evaluate, load_rule_file
from ktriage.kb.lint import read_example

REPO = Path(__file__).resolve().parent.parent
BUGS = REPO / "src" / "ktriage" / "kb" / "bugs"
FIXTURES = REPO / "tests" / "fixtures" / "kb"
RULE_FILES = sorted(p for p in BUGS.glob("*.yaml"))


def _load(path: Path):  # type: ignore[no-untyped-def]
    rule, errors = load_rule_file(path.read_text(encoding="utf-8"), str(path), "packaged")
    assert not errors, "\n".join(str(e) for e in errors)
    return rule


def _examples(key: str) -> list[tuple[Path, str]]:
    import yaml

    out = []
    for p in RULE_FILES:
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            data = {}
        for e in (data.get(key) or []) if isinstance(data, dict) else []:
            if isinstance(e, dict) and e.get("file"):
                out.append((p, str(e["file"])))
    return out


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_is_valid(path: Path) -> None:
    rule = _load(path)
    assert rule.id == path.stem, "id must equal the file name"
    assert rule.section("examples"), "a rule needs a real positive example"
    assert rule.section("negative_examples"), "a rule needs a real near-miss negative example"


def _crashes(path: Path, rule_id: str, name: str):  # type: ignore[no-untyped-def]
    f = FIXTURES / rule_id / name
    assert f.is_file(), f"{f} missing"
    try:
        return read_example(f)
    except LookupError as e:
        pytest.skip(f"{name}: {e}")


@pytest.mark.parametrize("path,name", _examples("examples"), ids=lambda x: x.stem if isinstance(x, Path) else x)
def test_positive_example_matches(path: Path, name: str) -> None:
    rule = _load(path)
    crashes = _crashes(path, rule.id, name)
    assert crashes, f"the reader finds no crash in {name}"
    results: list[Match] = [evaluate(rule, c) for c in crashes]
    assert any(not m.similar for m in results), "; ".join(
        f"score {m.score:.2f} differs: {', '.join(m.missed)}" for m in results
    )


@pytest.mark.parametrize(
    "path,name", _examples("negative_examples"), ids=lambda x: x.stem if isinstance(x, Path) else x
)
def test_negative_example_does_not_match(path: Path, name: str) -> None:
    rule = _load(path)
    for c in _crashes(path, rule.id, name):
        m = evaluate(rule, c)
        assert m.similar, f"negative {name} fully matches ({', '.join(m.matched)})"


def test_kb_lint_exits_0() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KTRIAGE_KB_PATH"}
    env["XDG_CONFIG_HOME"] = str(REPO / "tests" / "fixtures" / "no-such-config-dir")
    r = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "kb", "lint"], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
