"""Many crashes, one `ktriage.report/1` line each: on this machine (a pool of contained child processes) or
on a Dask cluster.

`discover.py` turns paths into tasks; `task.py` runs one task in its own child process (`child.py`) with a
time and memory limit, retried once; `local.py` and `dask_engine.py` schedule tasks; `output.py` writes the
JSON lines and knows what an earlier run already did; `cli.py` is `ktriage batch`.
"""

from __future__ import annotations

__all__: list[str] = []  # import the submodules by name (`python -m ktriage.batch.child` must not be imported first)
