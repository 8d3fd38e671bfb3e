"""Progress on stderr: shown when stderr is a terminal (a pty here), absent when it is not, and the report
on stdout is the same either way."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from realdata import FIXTURES, REPO


def run_with_pty_stderr(*args: str) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    p = subprocess.Popen([sys.executable, "-m", "ktriage.cli", *args], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    out = p.stdout.read() if p.stdout else b""
    p.wait(timeout=300)
    err = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO once the child side is closed
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    return p.returncode, out.decode(), err.decode("utf-8", "replace")


def run_piped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ktriage.cli", *args], capture_output=True, text=True, timeout=300)


def test_big_log_shows_a_byte_bar_on_a_terminal_only(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import scan_speed  # routine syslog lines with real crash reports spliced in

    log = tmp_path / "messages"
    scan_speed.generate(log, 40 << 20)
    rc, out, err = run_with_pty_stderr("analyze", "--no-analysis", str(log))
    assert rc == 0
    size_mb = f"/{log.stat().st_size / 1e6:.1f} MB"  # rich's DownloadColumn: decimal megabytes
    assert "reading messages" in err and size_mb in err  # the bar counts the file's bytes
    piped = run_piped("analyze", "--no-analysis", str(log))
    assert piped.returncode == 0 and piped.stderr == ""  # nothing added when stderr is not a terminal
    assert piped.stdout == out


def test_directory_shows_the_count_of_inputs(tmp_path: Path) -> None:
    for name in ("warn", "bug-on", "panic"):
        (tmp_path / f"{name}.log").write_bytes((FIXTURES / "lab" / f"{name}.console.log").read_bytes())
    rc, out, err = run_with_pty_stderr("analyze", "--no-analysis", str(tmp_path))
    assert rc == 0 and "3 inputs" in err
    assert run_piped("analyze", "--no-analysis", str(tmp_path)).stderr == ""
