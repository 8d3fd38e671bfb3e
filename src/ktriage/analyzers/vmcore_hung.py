"""vmcore.hung and vmcore.deadlock: the tasks in D state, the lock each sleeps on, who holds it, and the chain of
who waits for whom (ktriage.vmcore.locks), closed into a deadlock cycle when the chain comes back to itself.

This is what hang triage does by hand with `crash> foreach UN bt`, `struct mutex`, and reading
owner words: here every edge is the kernel's own record (the waiter on the lock's wait list, the lock's owner
word), so a cycle is a certain deadlock, not a guess from stack shapes.
"""

from __future__ import annotations

from ktriage.analyzers import AnalysisContext, Skip, analyzer
from ktriage.analyzers.vmcore_analysis import _names, _session, _waited_s
from ktriage.model import Finding

HANG_KINDS = ("hung-task", "rcu-stall", "soft-lockup", "panic", "hard-lockup")
MAX_BLOCKED = 64  # D tasks collected; a host stuck on one filesystem lock has hundreds, all in one chain
MAX_REPORTED = 16  # of which this many get a stack and chain in the report


def _edge_text(w) -> str:
    held = w.holder()
    state = f" (state {w.owner_state})" if w.owner_state and not w.reader_owned else ""
    return f"waits on {w.kind} {w.lock_name} held by {held}{state}"


def _edge_evidence(w) -> str:
    word = f"{w.owner_word:#x}" if w.owner_word is not None else "?"
    queue = f"; wait list: {', '.join(w.waiters)}" if w.waiters else ""
    return (
        f"{w.comm}[{w.pid}] -> {w.kind} {w.lock_name} at {w.lock:#x}, found as {w.how}; owner word {word}"
        + (" (RWSEM_READER_OWNED)" if w.reader_owned else "")
        + queue
    )


def _chain_text(graph, t) -> tuple[str, list, int | None]:
    waits, closes = graph.chain(t.value_())
    if not waits:
        return "", waits, closes
    head = f"{waits[0].comm}[{waits[0].pid}]"
    parts = [head] + [_edge_text(w) + ("," if k + 1 < len(waits) else "") for k, w in enumerate(waits)]
    text = " ".join(parts)
    if closes is not None:
        back = waits[closes]
        text += f" -> back to {back.comm}[{back.pid}]: deadlock" if len(waits) - closes > 1 else ": self-deadlock"
    return text, waits, closes


@analyzer("vmcore.hung", order=68, needs=("vmcore",))
def analyze_hung(ctx: AnalysisContext) -> list[Finding]:
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import task_state_to_char

    from ktriage.vmcore.locks import WaitGraph

    s = _session(ctx)
    prog = s.prog
    if ctx.crash.kind not in HANG_KINDS:
        raise Skip(f"not a hang ({ctx.crash.kind})")
    blocked = []
    for t in for_each_task(prog):
        try:
            if task_state_to_char(t) == "D":
                blocked.append(t)
        except Exception:  # noqa: BLE001 - drgn.FaultError: a task_struct not in the dump
            continue
        if len(blocked) >= MAX_BLOCKED:
            break
    if not blocked:
        raise Skip("no task in D state")
    graph = WaitGraph(prog)
    ev, data, chains, edges = [], [], [], []
    for t in blocked[:MAX_REPORTED]:
        comm = t.comm.string_().decode("utf-8", "replace")
        w = _waited_s(prog, t)
        names = _names(prog, t)
        ev.append(
            f"D {comm} pid {t.pid.value_()}"
            + (f", not run for ≈{w:.1f}s" if w is not None else "")
            + f": {' <- '.join(names[:8])}"
        )
        entry: dict = {"comm": comm, "pid": t.pid.value_(), "waited_s": w, "stack": names}
        text, waits, _closes = _chain_text(graph, t)
        if waits:
            first = waits[0]
            entry["lock"] = {
                "kind": first.kind,
                "name": first.lock_name,
                "address": first.lock,
                "how": first.how,
                "owner_word": first.owner_word,
                "reader_owned": first.reader_owned,
                "waiters": first.waiters,
            }
            entry[first.kind] = first.lock_name  # "mutex": "crashmod_mutex" (the key names the kind)
            if first.owner is not None:
                entry["owner"] = {
                    "comm": first.owner_comm,
                    "pid": first.owner_pid,
                    "state": first.owner_state,
                    "stack": _names(prog, _task(prog, first.owner), 8),
                    "reader_owned": first.reader_owned,
                }
            edges.append(first)
            chains.append(text)
        data.append(entry)
    ev += [f"chain: {c}" for c in dict.fromkeys(chains)]
    ev += [f"how: {_edge_evidence(w)}" for w in edges]
    cycles = graph.cycles([t.value_() for t in blocked[:MAX_REPORTED]])
    cyc_data = [
        [
            {
                "comm": w.comm,
                "pid": w.pid,
                "kind": w.kind,
                "lock": w.lock_name,
                "owner": w.owner_comm,
                "owner_pid": w.owner_pid,
            }
            for w in c
        ]
        for c in cycles
    ]
    first = data[0]
    held = first.get("owner")
    lock = first.get("lock")
    summary = (
        f"{len(blocked)} task(s) in D state; {first['comm']}[{first['pid']}]"
        + (
            f" waits on {lock['kind']} {lock['name']} held by {held['comm']}[{held['pid']}] (state {held['state']})"
            if lock and held
            else f" waits on {lock['kind']} {lock['name']}"
            if lock
            else " is blocked"
        )
        + (f"; {len(cycles)} deadlock cycle(s)" if cycles else "")
        + "."
    )
    out = [
        Finding(
            "vmcore.hung",
            summary,
            tuple(ev),
            "high",
            "vmcore.hung",
            {"tasks": data, "chains": list(dict.fromkeys(chains)), "cycles": cyc_data},
        )
    ]
    out += [_deadlock(c, blocked, graph) for c in cycles]
    return out


def _task(prog, addr: int):
    import drgn

    return drgn.Object(prog, "struct task_struct *", addr)


def _deadlock(cycle, blocked, graph) -> Finding:
    """One cycle: each task holds the lock the previous one waits for. Certain: both ends of every edge are the
    kernel's own records (the waiter on the wait list, the owner word)."""
    members = {w.task for w in cycle}
    parts = []
    for k, w in enumerate(cycle):
        held = cycle[k - 1]  # the lock the previous task in the cycle waits on, which this one holds
        parts.append(f"{w.comm}[{w.pid}] holds {held.kind} {held.lock_name} and waits for {w.kind} {w.lock_name}")
    behind = []
    for t in blocked:
        if t.value_() in members:
            continue
        ch, _ = graph.chain(t.value_())
        if any(w.owner in members for w in ch):
            behind.append(f"{ch[0].comm}[{ch[0].pid}]")
    summary = (
        f"Deadlock ({len(cycle)} task{'s' if len(cycle) > 1 else ''}): "
        + "; ".join(parts)
        + (f". {len(behind)} more task(s) wait behind it: {', '.join(behind[:6])}" if behind else "")
        + "."
    )
    ev = tuple(
        f"{w.comm}[{w.pid}] -> {w.kind} {w.lock_name} ({w.lock:#x}): owner word {w.owner_word:#x} = "
        f"{w.owner_comm}[{w.owner_pid}]; this task's waiter is on the lock's wait list ({w.how})"
        for w in cycle
    )
    data = {
        "tasks": [
            {
                "comm": w.comm,
                "pid": w.pid,
                "waits_on": {"kind": w.kind, "name": w.lock_name, "address": w.lock},
                "held_by": {"comm": w.owner_comm, "pid": w.owner_pid},
            }
            for w in cycle
        ],
        "behind": behind,
    }
    return Finding("vmcore.deadlock", summary, ev, "certain", "vmcore.hung", data)
