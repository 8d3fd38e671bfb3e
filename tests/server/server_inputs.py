"""Real crash texts for the server tests: the lab's console logs (tests/fixtures/lab, made by lab/lab.py in QEMU)
and, when /work/shared is there, the seed crash texts."""

from __future__ import annotations

import re
from pathlib import Path

from realdata import REPO, SEEDS

LAB = REPO / "tests" / "fixtures" / "lab"
XSS = "<script>alert(1)</script>"
MAX_BODY = 1 << 20  # the tests' server limit: small, so the 413 tests send little


def lab_log(name: str) -> bytes:
    return (LAB / f"{name}.console.log").read_bytes()


def with_comm(log: bytes, comm: str) -> bytes:
    """The same real log with the crashing task's name rewritten (every `Comm: NAME` in it).

    The kernel copies comm from user space (prctl(PR_SET_NAME), the executable's name), so a hostile
    program can put markup there; the rewrite stands for such a program."""
    out, n = re.subn(rb"(Comm: )\S+", lambda m: m.group(1) + comm.encode(), log)
    assert n, "no Comm: line to rewrite"
    return out


def seed_texts() -> list[Path]:
    return sorted(SEEDS.glob("[0-9][0-9][0-9]_*.txt")) if SEEDS.is_dir() else []
