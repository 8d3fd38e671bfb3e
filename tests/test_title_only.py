"""Past `--max-crashes` a log's crashes are only counted by title (issue 19: a log of 100,000 oopses must finish in
seconds, not minutes): those are built from the report's own lines without registers, context or code bytes. Their
title, kind, panic line and line span must be the whole build's, on every text we have."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ktriage.logs.scanner import scan_binary
from ktriage.model import Crash
from realdata import CORPUS, REPO

LAB = REPO / "tests" / "fixtures" / "lab"


def _read(data: bytes, full: int | None) -> list[Crash]:
    return list(scan_binary(io.BytesIO(data), "x.log", full=full))


def _summary(crashes: list[Crash]) -> list[tuple[object, ...]]:
    return [(c.title, c.kind, c.panic, c.source) for c in crashes]


def _texts() -> list[Path]:
    roots = [REPO / "tests" / "fixtures", REPO / "tests" / "corpora"]
    paths = [p for r in roots for p in r.rglob("*") if p.is_file() and p.suffix not in (".yaml", ".json", ".gz")]
    return sorted(paths)


def test_titles_past_the_cap_are_the_whole_builds_titles() -> None:
    compared = 0
    for path in _texts():
        data = path.read_bytes()
        whole, light = _read(data, None), _read(data, 0)
        assert _summary(light) == _summary(whole), path
        compared += len(whole)
    assert compared > 150


def test_titles_past_the_cap_on_the_syzkaller_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"syzkaller report corpus not found at {CORPUS}")
    for path in sorted(p for p in CORPUS.iterdir() if p.is_file()):
        data = path.read_bytes()
        assert _summary(_read(data, 0)) == _summary(_read(data, None)), path


def test_the_first_crashes_are_built_whole() -> None:
    lines = (LAB / "null-member.console.log").read_text().splitlines()
    start = next(i for i, x in enumerate(lines) if "BUG: kernel NULL" in x)
    data = ("\n".join(lines[start : start + 40]) + "\n").encode() * 5
    whole = _read(data, None)
    capped = _read(data, 2)
    assert len(whole) == len(capped) == 5
    assert capped[:2] == whole[:2]
    # past the cap: no registers, frames or task (read by hand: the whole build has them)
    assert whole[2].registers and whole[2].frames and whole[2].task.comm == "sh"
    assert not capped[2].registers and not capped[2].frames and capped[2].task.comm is None
    assert [c.title for c in capped] == [c.title for c in whole]
    assert capped[4].title == "BUG: unable to handle kernel NULL pointer dereference in crashmod_read_rx_count"
