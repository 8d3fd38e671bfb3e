"""Submission, spool and backoff against a real HTTP server on 127.0.0.1 (http.server in a thread) that is
down first (connection refused), then up; the reports come from the lab's real console logs."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ktriage.server.live import free_port

from .helpers import crashed_kernel_log, debian_crash, rhel_crash
from .test_collect_sources import outbox, run, said

TOKEN = "s3cret-token"


class Fleet(ThreadingHTTPServer):
    """Takes POST /api/v1/reports like the fleet server's contract: 202, 401 without the token, 400."""

    def __init__(self, port: int) -> None:
        self.received: list[dict] = []
        self.hosts: list[str] = []
        self.seen: list[str] = []
        self.reject_kind: str | None = None
        super().__init__(("127.0.0.1", port), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Fleet

    def log_message(self, *a: object) -> None:
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/api/v1/reports":
            return self._reply(404, {"detail": "not found"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"detail": "invalid token"})
        report = json.loads(body)
        if report["crashes"][0]["kind"] == self.server.reject_kind:
            return self._reply(400, {"detail": "cannot read this report"})
        self.server.received.append(report)
        query = urllib.parse.parse_qs(url.query)
        self.server.hosts.append(query["host"][0])
        self.server.seen.append(query["seen"][0])
        self._reply(202, {"crashes": [{"bucket": c["bucket"], "new": True} for c in report["crashes"]]})


def serve(port: int, after: float = 0.0) -> tuple[Fleet, threading.Thread]:
    """The server, started `after` seconds from now (connections are refused until then)."""
    box: list[Fleet] = []
    ready = threading.Event()

    def go() -> None:
        time.sleep(after)
        box.append(Fleet(port))
        ready.set()
        box[0].serve_forever(poll_interval=0.05)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    if after == 0:
        ready.wait(5)
    return box, t  # type: ignore[return-value]


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    crash = tmp_path / "crash"
    debian_crash(crash, "202612051432", crashed_kernel_log("null-member"))
    rhel_crash(crash, "2026-12-05-14:40:02", crashed_kernel_log("bug-on"))
    return tmp_path


def args(tmp: Path, port: int, *more: str) -> list[str]:
    return [
        "--crash-dir",
        str(tmp / "crash"),
        "--pstore",
        str(tmp / "none"),
        "--host",
        "web-17",
        "--submit",
        f"http://127.0.0.1:{port}",
        "--token",
        TOKEN,
        *more,
    ]


def test_unreachable_then_up_within_one_run_backs_off_and_sends_in_order(machine: Path) -> None:
    port = free_port()
    box, _ = serve(port, after=0.8)
    t0 = time.monotonic()
    code, out, err = run(machine, *args(machine, port, "--retry-for", "30", "--backoff-base", "0.2"))
    took = time.monotonic() - t0
    assert code == 0, err
    fleet = box[0]
    try:
        found = [x.split()[1] for x in said(out, "found")]
        assert [r["collected"]["what"] for r in fleet.received] == found  # the order they were found in
        assert [r["crashes"][-1]["guilty_frame"] for r in fleet.received] == [
            "crashmod_check_state",
            "crashmod_read_rx_count",
        ]
        assert fleet.hosts == ["web-17", "web-17"]
        dmesg = machine / "crash" / "202612051432" / "dmesg.202612051432"
        assert fleet.seen[1] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(dmesg.stat().st_mtime))
        assert len(said(out, "sent")) == 2 and "(new)" in said(out, "sent")[0]
        assert took >= 0.8 and outbox(machine) == [] and not (machine / "spool" / "backoff.json").exists()
    finally:
        fleet.shutdown()


def test_spooled_across_runs_with_backoff_then_sent_once_in_order(machine: Path) -> None:
    port = free_port()
    code, out, err = run(machine, *args(machine, port))
    assert code == 4 and "spooled  2 report(s)" in err and "unreachable" in err
    backoff = json.loads((machine / "spool" / "backoff.json").read_text())
    assert backoff["failures"] == 1 and backoff["next_attempt"] > time.time() + 20  # base 30 s
    box, _ = serve(port)
    fleet = box[0]
    try:
        # a new crash arrives while the others wait: it queues behind them
        debian_crash(machine / "crash", "202612061010", crashed_kernel_log("warn"))
        code, out, err = run(machine, *args(machine, port))
        assert code == 4 and "backing off" in err and fleet.received == []  # the server is not even asked
        code, out, err = run(machine, *args(machine, port, "--retry-now"))
        assert code == 0, err
        assert [r["crashes"][-1]["guilty_frame"] for r in fleet.received] == [
            "crashmod_check_state",
            "crashmod_read_rx_count",
            "crashmod_warn",
        ]
        code, out, _ = run(machine, *args(machine, port, "--retry-now"))
        assert code == 0 and len(fleet.received) == 3 and not said(out, "sent")
    finally:
        fleet.shutdown()


def test_wrong_token_keeps_reports_and_a_rejected_report_is_set_aside(machine: Path) -> None:
    port = free_port()
    box, _ = serve(port)
    fleet = box[0]
    try:
        fleet.reject_kind = "bug"
        bad = [
            "--crash-dir",
            str(machine / "crash"),
            "--pstore",
            str(machine / "none"),
            "--submit",
            f"http://127.0.0.1:{port}/",
            "--token",
            "wrong",
        ]
        code, out, err = run(machine, *bad)
        assert code == 4 and "HTTP 401: invalid token (check the token)" in err and len(outbox(machine)) == 2
        code, out, err = run(machine, *args(machine, port, "--retry-now"))
        assert code == 3 and "rejected: " in err and "HTTP 400: cannot read this report" in err
        assert [r["crashes"][-1]["kind"] for r in fleet.received] == ["null-deref"]
        rejected = sorted((machine / "spool" / "rejected").iterdir())
        assert [p.suffix for p in rejected] == [".json", ".txt"]
        assert "cannot read this report" in rejected[1].read_text() and outbox(machine) == []
    finally:
        fleet.shutdown()
