"""ktriage.fastexit: the real command exits with its status after running atexit handlers and flushing its
output; in-process callers (CliRunner, tests) get a normal SystemExit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ktriage.fastexit as fastexit

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_in_process_callers_get_systemexit():
    assert fastexit.standalone is False
    with pytest.raises(SystemExit) as e:
        fastexit.leave(3)
    assert e.value.code == 3


def test_standalone_exit_runs_atexit_and_flushes(tmp_path):
    marker = tmp_path / "cleaned"
    code = (
        "import atexit, sys, ktriage.fastexit as f\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('x'))\n"
        "f.standalone = True\n"
        "sys.stdout.write('report' * 10000)\n"  # buffered: lost unless flushed before os._exit
        "f.leave(3)\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 3
    assert r.stdout == "report" * 10000
    assert marker.read_text() == "x"  # a reassembled temporary dump is removed the same way


def test_cli_exit_status_kept(tmp_path):
    missing = tmp_path / "missing.log"
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", str(missing), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 3, r.stderr  # EXIT_INPUT: an input could not be read
    assert '"inputs"' in r.stdout and "missing.log" in r.stderr
