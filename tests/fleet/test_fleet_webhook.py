"""Webhook notifications, received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fleet_inputs import LAB

from ktriage.fleet import FleetStore


class _Receiver(BaseHTTPRequestHandler):
    got: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.headers["Content-Type"] == "application/json"
        type(self).got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    _Receiver.got = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", _Receiver.got
    srv.shutdown()
    srv.server_close()


def test_created_and_threshold(db_url: str, receiver: tuple[str, list[dict]]) -> None:
    url, got = receiver
    st = FleetStore.open(db_url, webhook=url)
    try:
        data = (LAB / "warn.console.log").read_bytes()
        first = st.ingest_bytes(data, "console.log", host="h0")
        assert st.notifier.flush(10)  # sent by the background thread
        assert [(m["event"], m["bucket"], m["count"]) for m in got] == [("bucket.created", first[0].bucket_id, 1)]
        for i in range(1, 11):  # ten more machines crash the same way: the bucket crosses 10 once
            st.ingest_bytes(data, "console.log", host=f"h{i}")
        st.ingest_bytes(data, "console.log", host="h3")  # a duplicate announces nothing
        assert st.notifier.flush(10)
        assert [(m["event"], m.get("threshold"), m["count"]) for m in got[1:]] == [("bucket.threshold", 10, 10)]
        assert got[1]["title"] == "WARNING in crashmod_warn" and got[1]["state"] == "new"
    finally:
        st.close()


def test_regressed_is_announced(db_url: str, receiver: tuple[str, list[dict]]) -> None:
    from realdata import SEEDS, seed

    if not SEEDS.is_dir():
        pytest.skip(f"real crash texts not found under {SEEDS}")
    url, got = receiver
    st = FleetStore.open(db_url, webhook=url)
    try:
        text = seed("003").read_text(errors="replace")
        st.ingest_bytes(text.encode(), "messages", host="el6")
        # the same crash printed by a vanilla 4.4 kernel, which carries the upstream fix (3.18)
        st.ingest_bytes(text.replace("2.6.32-358.el6.x86_64", "4.4.0").encode(), "messages", host="v44")
        assert st.notifier.flush(10)
        assert [m["event"] for m in got] == ["bucket.created", "bucket.regressed"]
        assert got[1]["kernel"] == "4.4.0" and got[1]["known_bug"] == "nf-queue-gso-segment-null"
        assert got[1]["generation"] == 2
    finally:
        st.close()


def test_receiver_down_is_logged_not_fatal(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    st = FleetStore.open(db_url, webhook=f"http://127.0.0.1:{port}/hook")
    st.notifier.backoff = 0.01
    try:
        with caplog.at_level(logging.WARNING, logger="ktriage.fleet"):
            r = st.ingest_bytes((LAB / "panic.console.log").read_bytes(), "console.log")
            assert r and r[0].bucket_new and st.get_crash(r[0].crash_id) is not None
            assert st.notifier.flush(10)
        # tried 1 + RETRIES times, then logged with the event's JSON so an operator can replay it
        msg = next(m for m in caplog.messages if "bucket.created not delivered" in m)
        assert "(after 4 attempts)" in msg and f'"bucket": "{r[0].bucket_id}"' in msg
    finally:
        st.close()


class _SlowReceiver(BaseHTTPRequestHandler):
    """Answers each POST after `delay` seconds, like a chat bridge under load."""

    delay = 1.0
    got: list[tuple[float, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(type(self).delay)
        type(self).got.append((time.monotonic(), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_receiver() -> Iterator[tuple[str, list[tuple[float, dict]]]]:
    _SlowReceiver.got = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _SlowReceiver)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", _SlowReceiver.got
    srv.shutdown()
    srv.server_close()


def test_slow_receiver_does_not_slow_ingest_and_close_sends_the_rest(
    db_url: str, slow_receiver: tuple[str, list[tuple[float, dict]]]
) -> None:
    """Three new buckets against a receiver that takes 1 s per POST: the ingests return before the first
    event is even received, and a clean close() waits until all three are delivered."""
    url, got = slow_receiver
    st = FleetStore.open(db_url, webhook=url)
    t0 = time.monotonic()
    for name in ("warn", "bug-on", "panic"):
        assert st.ingest_bytes((LAB / f"{name}.console.log").read_bytes(), "console.log", host="h")[0].bucket_new
    ingested = time.monotonic()
    assert got == []  # nothing received yet: the first POST is still sleeping in the receiver
    assert ingested - t0 < 3.0  # three synchronous POSTs would have taken 3 s or more
    st.close()
    assert [ev["event"] for _, ev in got] == ["bucket.created"] * 3
    assert sorted(ev["title"] for _, ev in got) == [
        "WARNING in crashmod_warn",
        "kernel BUG in crashmod_check_state",
        "kernel panic: crashmod: explicit panic requested",
    ]
    assert st.notifier.sent == 3 and st.notifier.failed == []


def test_close_logs_what_could_not_be_sent(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A receiver that never answers within the shutdown budget: close() returns in bounded time and logs
    every event it could not send, with its JSON."""
    srv = socket.socket()  # accepts connections (the backlog) but never answers
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    try:
        st = FleetStore.open(db_url, webhook=f"http://127.0.0.1:{srv.getsockname()[1]}/hook")
        st.notifier.timeout = 0.5
        for name in ("warn", "bug-on"):
            st.ingest_bytes((LAB / f"{name}.console.log").read_bytes(), "console.log", host="h")
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="ktriage.fleet"):
            st.notifier.close(timeout=1.0)
            st.close()
        assert time.monotonic() - t0 < 1.0 + 2 * 0.5 + 1.0
        lost = [m for m in caplog.messages if "bucket.created not delivered" in m]
        assert len(lost) == 2 and st.notifier.sent == 0
        assert any("crashmod_warn" in m for m in lost) and any("crashmod_check_state" in m for m in lost)
    finally:
        srv.close()
