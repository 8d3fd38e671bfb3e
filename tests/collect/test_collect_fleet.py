"""End to end with the real fleet server: `ktriage collect` sends to `ktriage fleet serve` on 127.0.0.1
(SQLite), which is down at first; `--db` writes the fleet database directly; `ktriage batch --submit` too.
The crashes are the lab's real console logs in both kdump layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ktriage.server.live import LiveServer, free_port

from .helpers import REPO, crashed_kernel_log, debian_crash, rhel_crash
from .test_collect_sources import run, said

pytest.importorskip("ktriage.fleet", reason="the fleet store is not in this tree")
pytest.importorskip("fastapi", reason="the fleet server needs ktriage[fleet]")
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def ktriage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ktriage.cli", *args], capture_output=True, text=True, env=ENV, timeout=300
    )


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[LiveServer]:
    """The fleet server on a SQLite database, not started: the test starts it (it is down first)."""
    server = LiveServer(f"sqlite:///{tmp_path / 'fleet.db'}", tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def buckets(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/buckets?limit=50", timeout=30) as r:
        return list(json.load(r)["items"])


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    debian_crash(tmp_path / "crash", "202612051432", crashed_kernel_log("null-member"))
    rhel_crash(tmp_path / "crash", "2026-12-05-14:40:02", crashed_kernel_log("bug-on"))
    return tmp_path


def test_collect_to_the_real_fleet_server_down_then_up(fleet: LiveServer, machine: Path) -> None:
    token, port = fleet.token("web-17"), fleet.port
    common = [
        "--crash-dir",
        str(machine / "crash"),
        "--pstore",
        str(machine / "none"),
        "--host",
        "web-17",
        "--submit",
        f"http://127.0.0.1:{port}",
        "--token",
        token,
    ]
    code, out, err = run(machine, *common)
    assert code == 4 and "unreachable" in err
    fleet.start()
    code, out, err = run(machine, *common, "--retry-now")
    assert code == 0, err
    assert len(said(out, "sent")) == 2 and all("bucket " in x for x in said(out, "sent"))
    got = {b["kind"]: b for b in buckets(port)}
    assert set(got) == {"null-deref", "bug"}
    assert "crashmod_read_rx_count" in got["null-deref"]["title"] and got["bug"]["hosts"] == 1
    assert all(b["count"] == 1 for b in got.values())
    code, out, _ = run(machine, *common, "--retry-now")  # nothing new: nothing sent twice
    assert code == 0 and not said(out, "sent") and all(b["count"] == 1 for b in buckets(port))
    # ktriage batch sends to the same server: the same crashes, counted again as new submissions
    r = ktriage(
        "batch",
        str(machine / "crash"),
        "--out",
        str(machine / "b.jsonl"),
        "--submit",
        f"http://127.0.0.1:{port}",
        "--token",
        token,
        "--host",
        "web-18",
    )
    assert r.returncode == 0, r.stderr
    assert sorted(b["kind"] for b in buckets(port)) == ["bug", "null-deref"]


def test_collect_into_a_fleet_database(machine: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'direct.db'}"
    code, out, err = run(
        machine, "--crash-dir", str(machine / "crash"), "--pstore", str(machine / "none"), "--host", "db-3", "--db", db
    )
    assert code == 0, err
    from ktriage.fleet import BucketFilter, FleetStore

    store = FleetStore.open(db)
    try:
        items, total = store.list_buckets(BucketFilter())
        assert total == 2 and sorted(b.kind for b in items) == ["bug", "null-deref"]
        items, total = store.list_buckets(BucketFilter(host="db-3"))
        assert total == 2
    finally:
        store.close()


def test_database_down_keeps_reports_spooled(machine: Path) -> None:
    pytest.importorskip("psycopg", reason="PostgreSQL driver not installed")
    db = f"postgresql+psycopg://ktriage@127.0.0.1:{free_port()}/fleet"  # nothing listens there
    code, out, err = run(machine, "--crash-dir", str(machine / "crash"), "--pstore", str(machine / "none"), "--db", db)
    assert code == 4 and "spooled  2 report(s)" in err and "database:" in err
    assert len(list((machine / "spool" / "outbox").glob("*.json"))) == 2
