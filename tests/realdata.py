"""Shared test helpers: where the real inputs live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KTRIAGE_SHARED", REPO.parent / "shared"))
SEEDS = SHARED / "seeds"
CORPUS = SHARED / "corpora" / "syzkaller"


def seed(prefix: str) -> Path:
    found = sorted(SEEDS.glob(prefix + "_*.txt"))
    if not found:
        pytest.fail(f"seed {prefix} not found under {SEEDS} (set KTRIAGE_SHARED)")
    return found[0]


def corpus_log(name: str) -> str:
    """The raw console log part of a syzkaller corpus file."""
    return (CORPUS / name).read_bytes().decode("utf-8", "replace").partition("\n\n")[2]
