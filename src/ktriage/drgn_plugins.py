"""Keep drgn from importing its own CLI command plugins when ktriage sets up a Program.

Why: the first time a drgn Program gets a target, drgn loads every `drgn.plugins` entry point to
call their `drgn_prog_set` hooks. drgn's two built-in entry points (`builtin_commands`,
`crash_commands`) only register commands for the interactive drgn CLI (no hooks), yet importing
them costs ~75 ms per run. ktriage never runs drgn commands, so while it sets up its Programs it
asks drgn (through its documented DRGN_DISABLE_PLUGINS variable) to skip just those two; other
installed plugins still load and run, and a user's own DRGN_PLUGINS/DRGN_DISABLE_PLUGINS still apply.
The variable is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

_DRGN_OWN = ("builtin_commands", "crash_commands")


@contextlib.contextmanager
def without_drgn_command_plugins() -> Iterator[None]:
    old = os.environ.get("DRGN_DISABLE_PLUGINS")
    if old == "*":
        yield
        return
    os.environ["DRGN_DISABLE_PLUGINS"] = ",".join([p for p in (old or "").split(",") if p] + list(_DRGN_OWN))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DRGN_DISABLE_PLUGINS", None)
        else:
            os.environ["DRGN_DISABLE_PLUGINS"] = old
