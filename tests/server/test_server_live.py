"""The real `ktriage fleet serve` over HTTP: the size limit stops reading the stream, 8 concurrent writers lose and
double nothing, and a kill -9 keeps every acknowledged report. On SQLite and PostgreSQL; real lab console logs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from server_inputs import lab_log

from ktriage.server.live import LiveServer, free_port
from realdata import REPO

SCENARIOS = ["bug-on", "warn", "soft-lockup", "uaf-poison", "panic", "list-corruption", "null-member", "hung-task"]


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    s = LiveServer(db_url, tmp_path / "serve.log", "--max-body", str(1 << 20)).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def live_token(server: LiveServer) -> str:
    return server.token("writer")


def _post(base: str, token: str, body: bytes, host: str) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{base}/api/v1/reports?host={host}", data=body, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return dict(json.load(r))


def test_chunked_upload_is_cut_at_the_limit(server: LiveServer, live_token: str) -> None:
    """64 MiB offered without a Content-Length against a 1 MiB limit: 413, and the server stopped taking the
    body long before the end (the client's writes fail or the reply arrives first)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: Bearer {live_token}\r\n\r\n".encode()
        )
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        sock.settimeout(0.5)
        reply = b""
        for _ in range(1024):
            try:
                sock.sendall(chunk)
                sent += 0x10000
            except OSError:
                break
            try:
                reply += sock.recv(65536)
                if reply:
                    break
            except TimeoutError:
                continue
        sock.settimeout(30)
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 64 << 20
    assert _get(server.base, "/api/v1/buckets")["total"] == 0  # still serving, nothing stored


def test_eight_concurrent_writers(server: LiveServer, live_token: str) -> None:
    jobs = [(name, f"host-{i}") for i in range(3) for name in SCENARIOS]  # 24 distinct crashes
    jobs += jobs[:8]  # and 8 resubmissions that must not count twice
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda j: _post(server.base, live_token, lab_log(j[0]), j[1]), jobs))
    assert [s for s, _ in replies] == [202] * len(jobs)
    stored = sum(r["stored"] for _, r in replies)
    assert stored == 24
    page = _get(server.base, "/api/v1/buckets?limit=100")
    assert page["total"] == len(SCENARIOS)
    assert sorted(b["count"] for b in page["items"]) == [3] * len(SCENARIOS)
    assert all(b["hosts"] == 3 for b in page["items"])


def test_acknowledged_reports_survive_kill_9(server: LiveServer, live_token: str) -> None:
    acked = []
    for i, name in enumerate(SCENARIOS):
        status, reply = _post(server.base, live_token, lab_log(name), f"k{i}")
        assert status == 202
        acked.append(reply["crashes"][0]["crash_id"])
    server.kill9()  # no shutdown: whatever was acknowledged must already be on disk
    server.start()
    for crash_id in acked:
        assert _get(server.base, f"/api/v1/crashes/{crash_id}")["report"] is not None
    assert sum(b["count"] for b in _get(server.base, "/api/v1/buckets?limit=100")["items"]) == len(SCENARIOS)
    assert re.search(rb"Traceback", server.log.read_bytes()) is None


@pytest.mark.parametrize(
    "url",
    ["bogus://x", "postgresql+psycopg://nobody@127.0.0.1:1/none", "sqlite:///{tmp}/a-file/fleet.db"],
    ids=["no-such-dialect", "refused", "under-a-file"],
)
def test_serve_with_an_unusable_database_says_so_in_one_line(url: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    url = url.format(tmp=tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "fleet", "serve", "--db", url, "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=120,
    )
    assert r.returncode == 3
    assert "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("ktriage: cannot open the fleet database: ")
