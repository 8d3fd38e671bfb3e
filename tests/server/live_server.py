"""The real `ktriage fleet serve`, started as a subprocess on 127.0.0.1 on a free port, for the tests that need
a real HTTP server (streaming, concurrency, kill -9, the browser)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from realdata import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def ktriage(*args: str) -> str:
    """Run a `ktriage` command with this tree's sources; its stdout."""
    r = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", *args], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert r.returncode == 0, f"ktriage {' '.join(args)}: {r.stderr.strip()}"
    return r.stdout


class LiveServer:
    def __init__(self, db_url: str, log: Path, *extra: str) -> None:
        self.db_url, self.log, self.extra = db_url, log, extra
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> LiveServer:
        cmd = [sys.executable, "-m", "ktriage.cli", "fleet", "serve", "--db", self.db_url, "--port", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*cmd, *self.extra], stdout=out, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ktriage fleet serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + "/api/v1/buckets?limit=1", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ktriage fleet serve did not answer within {timeout}s")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
