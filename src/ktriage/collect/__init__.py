"""On a machine, at the next boot: find what a crash left, analyze it once, send the report.

Sources (`sources.py`): kdump's /var/crash in Debian's and RHEL's layouts (`kdump.py`), pstore records put
back in order (`pstore.py`), the previous boot's kernel journal. Each found crash is analyzed by ktriage's
pipeline (`analyze.py`), queued in an on-disk outbox (`spool.py`) and sent to a fleet server over HTTP or
stored in a fleet database (`submit.py`); `state.py` remembers what was handled. `run.py` ties a run
together and defines the exit status; `cli.py` is the command and `contrib/` the systemd unit and config.
"""

from __future__ import annotations

__all__ = ["CollectConfig", "collect"]

from ktriage.collect.run import CollectConfig, collect
