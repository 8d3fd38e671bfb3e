"""Shared test helpers: where the real inputs live, and the one policy for when they are absent.

Two kinds of real input feed the tests:

- inside the repository (tests/fixtures/, examples/): always there; the core tests use only these;
- beside it, in the shared material of the development setup ($KTRIAGE_SHARED, default ../shared):
  public crash reports (seeds/) and syzkaller's report corpus (corpora/syzkaller, or $KTRIAGE_CORPUS).
  A clone from the project's public home has none of it, so a test that needs it SKIPS with a reason
  naming what is missing. When the directory is there but a named file is not, the test FAILS: that
  is a broken reference, not an absent data set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SHARED = Path(os.environ.get("KTRIAGE_SHARED", REPO.parent / "shared"))
SEEDS = SHARED / "seeds"
CORPUS = Path(os.environ.get("KTRIAGE_CORPUS", SHARED / "corpora" / "syzkaller"))

SEEDS_MISSING = f"public crash reports not found at {SEEDS} (set KTRIAGE_SHARED to the shared material)"
CORPUS_MISSING = f"syzkaller report corpus not found at {CORPUS} (set KTRIAGE_CORPUS or KTRIAGE_SHARED)"

needs_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason=SEEDS_MISSING)
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=CORPUS_MISSING)


def seed(prefix: str) -> Path:
    """The public crash report whose file name starts with `prefix` (e.g. "000")."""
    if not SEEDS.is_dir():
        pytest.skip(SEEDS_MISSING)
    found = sorted(SEEDS.glob(prefix + "_*.txt"))
    if not found:
        pytest.fail(f"crash report {prefix} not found under {SEEDS}")
    return found[0]


def seed_paths() -> list[Path]:
    """Every public crash report (empty when the shared material is absent: parametrize then skips)."""
    return sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []


def corpus_path(name: str) -> Path:
    """One syzkaller corpus file (header lines, a blank line, the raw console log)."""
    if not CORPUS.is_dir():
        pytest.skip(CORPUS_MISSING)
    path = CORPUS / name
    if not path.is_file():
        pytest.fail(f"corpus file missing: {path}")
    return path


def corpus_log(name: str) -> str:
    """The raw console log part of a syzkaller corpus file."""
    return corpus_path(name).read_bytes().decode("utf-8", "replace").partition("\n\n")[2]
