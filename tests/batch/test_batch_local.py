"""`ktriage batch` with the local engine, on the lab's real console logs (tests/fixtures/lab). The titles
checked are read off the logs by hand: bug-on "kernel BUG at lab/crashmod/crashmod.c:282!" in
crashmod_check_state (line 232-235), warn "WARNING: ... crashmod_warn+0xb/0x10" (line 229)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_LOGS = REPO / "tests" / "fixtures" / "lab"


def batch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env_path = str(REPO / "src")
    return subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "batch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": env_path},
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def comparable(line: dict) -> dict:
    """A report line without what depends on the run (timings, memory, attempts)."""
    d = dict(line)
    d["batch"] = {k: v for k, v in line["batch"].items() if k in ("path", "status")}
    return d


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name in ("bug-on", "warn", "null-member", "hung-task"):
        shutil.copy(LAB_LOGS / f"{name}.console.log", d)
    (d / "notes.bin").write_bytes(bytes(range(256)) * 40)  # not a log: left out, said so
    return d


def test_one_line_per_task_then_rerun_skips(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    r = batch(str(logs), "--out", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "notes.bin: left out (binary)" in r.stderr
    got = {Path(x["batch"]["path"]).name: x for x in lines(out)}
    assert sorted(got) == ["bug-on.console.log", "hung-task.console.log", "null-member.console.log", "warn.console.log"]
    assert got["bug-on.console.log"]["crashes"][0]["title"] == "kernel BUG in crashmod_check_state"
    assert got["warn.console.log"]["crashes"][0]["guilty_frame"] == "crashmod_warn"
    for x in got.values():
        assert x["schema"] == "ktriage.report/1" and x["batch"]["status"] == "ok" and x["batch"]["attempts"] == 1
        assert x["batch"]["max_rss_mb"] > 0
    # the same answer as `ktriage analyze --format json` on that file
    a = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", "--format", "json", str(logs / "warn.console.log")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert json.loads(a.stdout)["crashes"] == got["warn.console.log"]["crashes"]
    r = batch(str(logs), "--out", str(out))
    assert r.returncode == 0 and "4 task(s) already in" in r.stderr and len(lines(out)) == 4


def test_timeout_retried_once_then_reported_failed_not_dropped(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    # 50 ms is less than a Python child takes to start: every attempt overruns
    r = batch(str(logs / "warn.console.log"), str(logs / "bug-on.console.log"), "--out", str(out), "--timeout", "0.05")
    assert r.returncode == 3
    got = lines(out)
    assert len(got) == 2
    for x in got:
        assert x["batch"] == {**x["batch"], "status": "failed", "attempts": 2, "reason": "timed out after 0.05 s"}
        assert x["inputs"][0]["status"] == "error" and x["crashes"] == []
    assert r.stderr.count("failed: timed out") == 2


def test_memory_limit_contained_to_the_task(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    # 16 MB of address space: the child cannot even map its modules
    r = batch(
        str(logs / "warn.console.log"), str(logs / "bug-on.console.log"), "--out", str(out), "--memory-limit", "16"
    )
    assert r.returncode == 3
    got = lines(out)
    assert len(got) == 2
    for x in got:
        assert x["batch"]["status"] == "failed" and x["batch"]["attempts"] == 2
        assert x["batch"]["reason"] == "over the memory limit (16 MB)"
    r = batch(str(logs / "warn.console.log"), "--out", str(tmp_path / "ok.jsonl"), "--memory-limit", "2048")
    assert r.returncode == 0 and lines(tmp_path / "ok.jsonl")[0]["batch"]["status"] == "ok"


@pytest.mark.parametrize("mb", [16, 17, 18, 19, 20, 21])
def test_child_counts_any_failure_at_its_limit_as_memory(logs: Path, mb: int) -> None:
    """Under a tight RLIMIT_AS the failing allocation lands somewhere different at each limit: a MemoryError
    in Python code, an ImportError when a C extension cannot be mapped (19 MB here), a ValueError from the
    compiler when an import is compiled without .pyc (seen in CI at 16 MB). All of them are the limit; a limit
    the analysis fits under (from about 22 MB on this machine) gives a report."""
    from ktriage.batch.child import MEMORY_EXIT

    task = json.dumps({"path": str(logs / "warn.console.log"), "memory_mb": mb})
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "ktriage.batch.child"], input=task, capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode in (0, MEMORY_EXIT), r.stderr[-500:]
    if mb == 16:
        assert r.returncode == MEMORY_EXIT
    else:
        assert r.returncode == MEMORY_EXIT or json.loads(r.stdout)["report"]["crashes"]
