"""The Dask engine: the same contained task function, scheduled by dask.distributed.

No `--scheduler`: a LocalCluster of `workers` single-threaded worker processes on this machine. With one:
`Client(address)` on an existing cluster, whose workers need ktriage installed. A worker that dies
mid-task loses nothing: the scheduler reruns its tasks elsewhere; a task whose workers keep dying is
reported failed (KilledWorker) with that reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from ktriage.batch.task import Limits, failed_line, run_contained

__all__ = ["run_dask"]


def _client(scheduler: str | None, workers: int) -> Any:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--engine dask needs Dask: pip install 'ktriage[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise ValueError(f"--scheduler {scheduler}: cannot connect ({e})") from None
    cluster = LocalCluster(
        n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0
    )
    return Client(cluster)


def run_dask(tasks: list[str], limits: Limits, workers: int, scheduler: str | None) -> Iterator[dict[str, Any]]:
    from dask.distributed import as_completed

    client = _client(scheduler, workers)
    try:
        futures = {}
        for t in tasks:
            key = "ktriage-batch-" + hashlib.sha256(t.encode()).hexdigest()[:16]
            futures[client.submit(run_contained, t, limits, key=key, pure=False)] = t
        for fut in as_completed(list(futures)):
            try:
                yield fut.result()
            except Exception as e:  # noqa: BLE001 - KilledWorker, CommClosedError: the task's own reason
                yield failed_line(futures[fut], f"{type(e).__name__}: {e}"[:300], 0)
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()
