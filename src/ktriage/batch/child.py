"""One task in its own process: `python -m ktriage.batch.child` reads the task as JSON on stdin and writes
the report as JSON on stdout. The limits are set here, first thing, on this process only: a vmcore that
makes drgn allocate without end, or a crash inside a C extension, costs this child and nothing else."""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

MEMORY_EXIT = 75  # a MemoryError under the address-space limit, told apart from other failures


def _limit_memory(mb: int | None) -> None:
    if mb:
        limit = mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _near_limit(mb: int) -> bool:
    """Under RLIMIT_AS a failed allocation does not always surface as MemoryError: CPython's parser and C
    extensions turn a failed malloc or mmap into other errors (a ValueError from the compiler in CI at 16 MB,
    hashlib without OpenSSL at 21 MB here). A process whose peak address space came within the size of a
    large mapping (8 MB, or a tenth of the limit) of its limit is counted as out of memory whatever it raised."""
    try:
        with open("/proc/self/status") as f:
            peak = next(int(x.split()[1]) for x in f if x.startswith("VmPeak:")) << 10
    except MemoryError:  # not even the status file can be read: the limit itself (seen at 21 MB)
        return True
    except (OSError, StopIteration, ValueError):
        return False
    limit = mb << 20
    return peak >= limit - max(8 << 20, limit // 10)


def run(task: dict[str, Any]) -> dict[str, Any]:
    from ktriage.pipeline import Options, analyze_paths
    from ktriage.render.json_out import report_dict

    opts = Options(**task.get("options", {}))
    t0 = time.monotonic()
    report = report_dict(analyze_paths([task["path"]], opts))
    return {
        "report": report,
        "seconds": round(time.monotonic() - t0, 3),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    task = json.load(sys.stdin)
    _limit_memory(task.get("memory_mb"))
    try:
        out = run(task)
    except MemoryError:
        return MEMORY_EXIT
    except Exception:
        if task.get("memory_mb") and _near_limit(task["memory_mb"]):
            return MEMORY_EXIT
        raise
    sys.stdout.write(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
