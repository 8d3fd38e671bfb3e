"""`ktriage analyze VMCORE` opens the dump on a worker thread while it imports and loads the knowledge base
(ktriage.vmcore.prefetch). The report must be the one the plain in-process pipeline gives, byte for byte, and a
dump that cannot be read must still give one line and exit status 3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.lab.conftest import debug_opts

from ktriage.pipeline import Options, analyze_paths
from ktriage.render.json_out import render


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(autouse=True)
def _prefetch_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The early open is opt-in (KTRIAGE_PREFETCH=1): by default each dump is read in a forked child instead."""
    monkeypatch.setenv("KTRIAGE_PREFETCH", "1")


@pytest.mark.parametrize("name", ["null-member", "hung-task", "netfilter-udp"])
@pytest.mark.parametrize("debug", [True, False], ids=["dwarf", "btf"])
def test_cli_report_equals_the_pipeline_report(lab, lab_scenario, name, debug):
    core = lab_scenario(name)["vmcore"]
    kw = debug_opts(lab) if debug else {}
    args = [core] + (["--vmlinux", kw["vmlinux"], "--debuginfo", kw["debuginfo_dirs"][0]] if debug else [])
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    want = json.loads(render(analyze_paths([core], Options(**kw))))
    got = json.loads(r.stdout)
    assert got == want
    assert got["crashes"][-1]["system"]["DEBUGINFO"] == ("dwarf" if debug else "btf")


def test_unreadable_dump_through_the_worker(lab_scenario, tmp_path):
    """The worker's error reaches the user as the usual one line (here: a kdump file whose header survived and
    nothing else)."""
    src = Path(lab_scenario("panic")["vmcore"])
    cut = tmp_path / "vmcore"
    cut.write_bytes(src.read_bytes()[:4096])
    r = _cli(str(cut))
    assert r.returncode == 3 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ktriage: {cut}") and src.stat().st_size > 4096


def test_the_dump_is_opened_once_on_the_worker(lab, lab_scenario, monkeypatch):
    """The CLI's early open is the one read_vmcore uses (the same options reach both), and it ran off the main
    thread."""
    import threading

    from click.testing import CliRunner

    import ktriage.vmcore as V
    from ktriage.cli import main

    opened = []
    real = V._open_session

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        opened.append(threading.current_thread() is threading.main_thread())
        return real(*a, **k)

    monkeypatch.setattr(V, "_open_session", spy)
    kw = debug_opts(lab)
    res = CliRunner().invoke(
        main,
        [
            "analyze",
            lab_scenario("null-member")["vmcore"],
            "--vmlinux",
            kw["vmlinux"],
            "--debuginfo",
            kw["debuginfo_dirs"][0],
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert opened == [False]
