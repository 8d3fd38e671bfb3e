"""Paths -> tasks: every vmcore and every kernel log under them, one task each, in a stable order."""

from __future__ import annotations

import os
import re

from ktriage.inputs import InputError, expand, open_input

__all__ = ["find_tasks"]

TASK_KINDS = {"vmcore", "log", "journal-json", "journal-export", "crash-output"}
# the log kdump saves beside its dump (RHEL's vmcore-dmesg.txt, kdump-tools' dmesg.<stamp>): the same crash
KDUMP_DMESG = re.compile(r"\A(?:vmcore-dmesg\.txt|dmesg\.\d{12})\Z")


def find_tasks(paths: list[str]) -> tuple[list[str], list[str]]:
    """(tasks as absolute paths, one-line notes on what was left out: binaries, ELF objects, empty files)."""
    tasks: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    dumps: set[str] = set()  # directories holding a dump
    for p in expand(paths):
        if p == "-":
            notes.append("-: standard input is not a batch task")
            continue
        try:
            inp, stream = open_input(p)
            stream.close()
        except InputError as e:
            notes.append(str(e))
            continue
        except (OSError, EOFError, ValueError) as e:
            notes.append(f"{p}: cannot read: {e}")
            continue
        if inp.kind not in TASK_KINDS:
            notes.append(f"{p}: left out ({inp.kind})")
            continue
        full = os.path.abspath(p)
        if full not in seen:
            seen.add(full)
            tasks.append(full)
            if inp.kind == "vmcore":
                dumps.add(os.path.dirname(full))
    kept = []
    for t in tasks:
        if KDUMP_DMESG.match(os.path.basename(t)) and os.path.dirname(t) in dumps:
            notes.append(f"{t}: left out (the log kdump saved beside the dump: the same crash)")
        else:
            kept.append(t)
    return kept, notes
