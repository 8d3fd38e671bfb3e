"""The local engine: N pool threads, each running one task at a time in its own child process.

Threads only wait (the work is in the children), so the pool costs nothing; a child that crashes, runs
out of memory or overruns its time is killed and reported, and the other tasks go on — which a
ProcessPoolExecutor cannot promise (one dead worker breaks the whole pool).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from ktriage.batch.task import Limits, run_contained

__all__ = ["run_local"]


def run_local(tasks: list[str], limits: Limits, workers: int) -> Iterator[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ktriage-batch") as pool:
        futures = [pool.submit(run_contained, t, limits) for t in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for f in futures:
                f.cancel()
