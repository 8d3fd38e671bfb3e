"""The real `ktriage fleet serve`, started as a subprocess on 127.0.0.1 on a free port.

For whatever needs a real HTTP server rather than FastAPI's in-process test client: the live-server and browser
tests (streaming, concurrency, kill -9), the collect-to-server tests and `bench/fleet_load.py`. It lives in the
package, not under tests/, so that the benchmark imports the same code as the tests without putting tests/ on its
path. It uses the standard library only (it starts the server, it does not import FastAPI), so a test that needs
just a free port (a Dask scheduler, a throwaway PostgreSQL) takes `free_port` from here without the fleet extra.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["LiveServer", "free_port"]

# the directory this ktriage package was imported from: the child runs the same sources as its parent
_SOURCES = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it; another process may still take it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_SOURCES), *filter(None, [env.get("PYTHONPATH")])])
    return env


class LiveServer:
    """`ktriage fleet serve --db DB_URL` on 127.0.0.1, its output appended to `log`; `extra` are more serve options.

    The port is chosen when the object is made, so a client can be pointed at it before the server is up."""

    def __init__(self, db_url: str, log: Path, *extra: str) -> None:
        self.db_url, self.log, self.extra = db_url, log, extra
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> LiveServer:
        """Start it (again, after `kill9` or `stop`) and wait until it answers; RuntimeError with the log's tail if
        it exits or stays silent for `timeout` seconds."""
        cmd = [sys.executable, "-m", "ktriage.cli", "fleet", "serve", "--db", self.db_url, "--port", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*cmd, *self.extra], stdout=out, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"ktriage fleet serve exited {self.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(self.base + "/api/v1/buckets?limit=1", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ktriage fleet serve did not answer within {timeout:g} s")

    def token(self, name: str) -> str:
        """A new API token for a machine called `name` (`ktriage fleet token create`; the server may be down)."""
        cmd = [sys.executable, "-m", "ktriage.cli", "fleet", "token", "create", "--db", self.db_url, name]
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"ktriage fleet token create exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout.strip()

    def kill9(self) -> None:
        """SIGKILL, no shutdown: what was acknowledged must already be on disk."""
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
