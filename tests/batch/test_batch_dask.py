"""`ktriage batch --engine dask` on a real Dask cluster on 127.0.0.1: a `dask scheduler` and two
`dask worker` processes (free ports, every wait bounded), on copies of the lab's real console logs.
The results must equal the local engine's, and killing a worker mid-run must lose no task."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ktriage.server.live import free_port

from .test_batch_local import LAB_LOGS, REPO, batch, comparable, lines

pytest.importorskip("dask.distributed", reason="Dask not installed (pip install 'ktriage[dask]')")
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}


def dask_cmd(*args: str) -> list[str]:
    exe = shutil.which("dask")
    return [exe, *args] if exe else [sys.executable, "-m", "distributed.cli.dask_spec", *args]


def wait_workers(address: str, n: int, timeout: float = 60) -> None:
    from dask.distributed import Client

    with Client(address, timeout="20s") as c:
        c.wait_for_workers(n, timeout=timeout)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    log = open(tmp_path / "dask.log", "wb")  # noqa: SIM115 - closed below
    try:
        procs.append(
            subprocess.Popen(
                dask_cmd("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
                stdout=log,
                stderr=log,
                env=ENV,
            )
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("dask scheduler did not start in 30 s:\n" + (tmp_path / "dask.log").read_text())
                time.sleep(0.2)
        for _ in range(2):
            # no nanny: a killed worker stays dead (a nanny would restart it)
            procs.append(
                subprocess.Popen(
                    dask_cmd(
                        "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard"
                    ),
                    stdout=log,
                    stderr=log,
                    env=ENV,
                )
            )
        wait_workers(address, 2)
        yield address, procs
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """16 tasks: four real lab logs, four copies each (a batch of machines that crashed alike)."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("bug-on", "warn", "null-member", "hung-task"):
        for i in range(4):
            shutil.copy(LAB_LOGS / f"{name}.console.log", d / f"{name}-{i}.log")
    return d


def by_path(path: Path) -> dict[str, dict]:
    return {x["batch"]["path"]: comparable(x) for x in lines(path)}


def test_dask_cluster_equals_local_and_a_killed_worker_loses_nothing(
    cluster: tuple[str, list[subprocess.Popen[bytes]]], logs: Path, tmp_path: Path
) -> None:
    address, procs = cluster
    local = tmp_path / "local.jsonl"
    assert batch(str(logs), "--out", str(local), "--workers", "2").returncode == 0
    out = tmp_path / "dask.jsonl"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ktriage.cli",
            "batch",
            str(logs),
            "--engine",
            "dask",
            "--scheduler",
            address,
            "--out",
            str(out),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (out.exists() and len(out.read_text().splitlines()) >= 2):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no result within 120 s"
        time.sleep(0.05)
    procs[1].kill()  # one worker dies with tasks running and queued on it
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert procs[1].poll() is not None and len(lines(out)) == 16
    assert by_path(out) == by_path(local)
    assert all(x["batch"]["status"] == "ok" for x in lines(out))


def test_dask_local_cluster_without_scheduler(logs: Path, tmp_path: Path) -> None:
    some = sorted(logs.iterdir())[:4]
    local, dask = tmp_path / "local.jsonl", tmp_path / "dask.jsonl"
    assert batch(*map(str, some), "--out", str(local)).returncode == 0
    r = batch(*map(str, some), "--out", str(dask), "--engine", "dask", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert by_path(dask) == by_path(local)
