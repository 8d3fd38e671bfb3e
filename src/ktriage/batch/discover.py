"""Paths -> tasks: every vmcore and every kernel log under them, one task each, in a stable order."""

from __future__ import annotations

import os

from ktriage.inputs import InputError, expand, open_input

__all__ = ["find_tasks"]

TASK_KINDS = {"vmcore", "log", "journal-json", "journal-export", "crash-output"}


def find_tasks(paths: list[str]) -> tuple[list[str], list[str]]:
    """(tasks as absolute paths, one-line notes on what was left out: binaries, ELF objects, empty files)."""
    tasks: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
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
    return tasks, notes
