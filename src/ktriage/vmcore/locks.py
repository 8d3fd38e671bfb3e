"""Who waits for whom: the sleeping lock a task is blocked on, who holds it, and the wait-for graph.

The kernel records both ends of every sleeping-lock wait, so none of this is guessed from stack shapes: the
lock's `wait_list` holds a waiter whose `task` is the sleeper, and the lock's `owner` word names the holder
(a mutex always; an rwsem its writer, or its last reader with RWSEM_READER_OWNED set). A lock read from a
DWARF variable and a lock found among a frame's registers and stack words (no locals: the btf tier) are both
accepted only when walking its wait list, as a well-formed ring, reaches this task's waiter.

Lock kinds are data (`LOCK_KINDS`): the struct, its waiter struct, the frames that sleep on it and the name
of their lock parameter, and which low bits of the owner word are flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import drgn

KERNEL_HALF = 0xFFFF000000000000  # x86_64 and arm64 (48-bit VA) kernel addresses


@dataclass(frozen=True)
class LockKind:
    name: str  # as reports say it: "mutex", "rwsem"
    struct: str  # the lock's C type
    waiter: str  # the on-stack record each sleeper links into the lock's wait_list
    frames: tuple[str, ...]  # substrings of the functions a sleeper on this lock is in
    param: str  # the lock parameter's name in those functions (DWARF)
    flags: int  # low bits of `owner` that are flags, not the task pointer
    reader_owned: int = 0  # the owner bit that says readers hold it (the task is only the last reader)


LOCK_KINDS: tuple[LockKind, ...] = (
    # kernel/locking/mutex.c: MUTEX_FLAGS 0x07 (WAITERS, HANDOFF, PICKUP); owner is a task pointer since 4.10
    LockKind("mutex", "struct mutex", "struct mutex_waiter", ("mutex_lock",), "lock", 0x07),
    # kernel/locking/rwsem.c: RWSEM_READER_OWNED 1, RWSEM_NONSPINNABLE 2 (RWSEM_OWNER_FLAGS_MASK, 5.3+)
    LockKind(
        "rwsem",
        "struct rw_semaphore",
        "struct rwsem_waiter",
        ("rwsem_down_", "down_read", "down_write"),
        "sem",
        0x03,
        reader_owned=0x01,
    ),
)


@dataclass
class Wait:
    """One edge of the wait-for graph: `task` sleeps on `lock`, which `owner` holds."""

    task: int  # task_struct address
    comm: str
    pid: int
    kind: str
    lock: int
    lock_name: str
    how: str  # how the lock was found, for the evidence
    owner: int | None = None  # task_struct address, None when the owner word is 0
    owner_comm: str | None = None
    owner_pid: int | None = None
    owner_state: str | None = None
    owner_word: int | None = None  # the raw owner field
    reader_owned: bool = False
    waiters: list[str] = field(default_factory=list)  # comm[pid] of every task on the lock's wait list

    def holder(self) -> str:
        if self.owner is None:
            return "no owner recorded"
        who = f"{self.owner_comm}[{self.owner_pid}]"
        return f"readers (last recorded reader {who}, which may have released it)" if self.reader_owned else who


def _comm(task) -> str:
    return task.comm.string_().decode("utf-8", "replace")


def _word(member) -> int:
    """An owner field: atomic_long_t (4.10+ mutex, 4.20+ rwsem) or a plain task pointer (older kernels)."""
    try:
        v = member.counter.value_()
    except (AttributeError, LookupError):
        v = member.value_()
    return v & 0xFFFFFFFFFFFFFFFF  # atomic_long_t is signed: a kernel pointer reads negative


def lock_name(prog, addr: int) -> str:
    """`crashmod_mutex` for a global, `sym+0x18` inside one, else the slab object it is embedded in."""
    try:
        sym = prog.symbol(addr)
        if sym.address <= addr < sym.address + max(sym.size, 1):
            return sym.name if sym.address == addr else f"{sym.name}+{addr - sym.address:#x}"
    except (LookupError, ValueError):
        pass
    from ktriage.vmcore.decoders import slab_info

    si = slab_info(prog, addr)
    if si and si.get("object") is not None:
        return f"{addr:#x} (in a {si['cache']} object +{si['offset'] or 0:#x})"
    return f"{addr:#x}"


def wait_ring(prog, kind: LockKind, lock) -> list[int] | None:
    """The tasks on the lock's wait list, or None unless it is a well-formed ring back to its head (every
    node's prev is the node before it): that rejects a pointer a few bytes off a real lock."""
    from drgn import container_of

    head = lock.wait_list.address_of_().value_()
    prev, node = head, lock.wait_list.next
    tasks: list[drgn.Object] = []
    for _ in range(64):
        if node.prev.value_() != prev:
            return None
        if node.value_() == head:
            return tasks
        tasks.append(container_of(node, kind.waiter, "list").task.value_())
        prev, node = node.value_(), node.next
    return None


def _holds_waiter(prog, kind: LockKind, addr: int, task: int) -> Any:
    import drgn

    try:
        lock = drgn.Object(prog, f"{kind.struct} *", addr)
        ring = wait_ring(prog, kind, lock)
    except (drgn.FaultError, LookupError, ValueError):  # not a lock: its "list" leads to unreadable memory
        return None
    return lock if ring and task in ring else None


def _frame_name(f) -> str:
    if f.name:
        return f.name
    try:
        return f.symbol().name
    except LookupError:
        return ""


def _sp(f) -> int | None:
    try:
        return f.sp
    except LookupError:
        try:
            regs = f.registers()
            return regs.get("fp") or regs.get("x29")
        except LookupError:
            return None


def _candidates(prog, frames: list, last: int) -> Iterator[tuple[int, str]]:
    """Kernel pointers held in the registers recovered for the lock frames and in the stack words under them."""
    for i in range(last + 1):
        try:
            for r, v in frames[i].registers().items():
                if isinstance(v, int):
                    yield v, f"register {r.upper()} of frame #{i} {_frame_name(frames[i])}"
        except LookupError:
            continue
    lo = _sp(frames[0])
    if lo is None:
        return
    hi = _sp(frames[last + 1]) if last + 1 < len(frames) else None
    size = min(max((hi or lo + 4096) - lo, 0), 4096)
    try:
        data = prog.read(lo, size)
    except Exception:  # noqa: BLE001 - drgn.FaultError: the stack page is not in the dump
        return
    for k in range(0, len(data) - 7, 8):
        yield int.from_bytes(data[k : k + 8], "little"), f"stack word at {lo + k:#x}"


def blocked_on(prog, task) -> tuple[LockKind, Any, str] | None:
    """(kind, lock object, how it was found) for the sleeping lock `task` waits on, or None."""
    try:
        frames = list(prog.stack_trace(task))
    except Exception:  # noqa: BLE001 - drgn.Error / ValueError: no stack for this task
        return None
    me = task.value_()
    names = [_frame_name(f) for f in frames]
    for kind in LOCK_KINDS:
        idx = [i for i, n in enumerate(names) if any(p in n for p in kind.frames)]
        if not idx:
            continue
        for i in idx:  # DWARF: the lock parameter of a sleeping frame
            try:
                v = frames[i][kind.param]
                if v.absent_ or not v.value_():
                    continue
            except (KeyError, LookupError, ValueError):
                continue
            lock = _holds_waiter(prog, kind, v.value_(), me)
            if lock is not None:
                return kind, lock, f"`{kind.param}` of {names[i]} (DWARF), and its wait list holds this task's waiter"
        seen: set[int] = set()
        for v, where in _candidates(prog, frames, idx[-1]):
            if v in seen or v < KERNEL_HALF or v & 7:
                continue
            seen.add(v)
            lock = _holds_waiter(prog, kind, v, me)
            if lock is not None:
                return kind, lock, f"{where}: the {kind.name} whose wait list holds this task's waiter"
    return None


def wait_of(prog, task) -> Wait | None:
    """The task's edge in the wait-for graph."""
    import drgn
    from drgn.helpers.linux.sched import task_state_to_char

    found = blocked_on(prog, task)
    if found is None:
        return None
    kind, lock, how = found
    w = Wait(
        task.value_(), _comm(task), task.pid.value_(), kind.name, lock.value_(), lock_name(prog, lock.value_()), how
    )
    try:
        ring = wait_ring(prog, kind, lock) or []
        for t in ring:
            wt = drgn.Object(prog, "struct task_struct *", t)
            w.waiters.append(f"{_comm(wt)}[{wt.pid.value_()}]")
    except (drgn.FaultError, LookupError):
        pass
    word = _word(lock.owner)
    w.owner_word = word
    owner = word & ~kind.flags
    if owner:
        w.reader_owned = bool(kind.reader_owned and word & kind.reader_owned)
        try:
            ot = drgn.Object(prog, "struct task_struct *", owner)
            w.owner, w.owner_comm, w.owner_pid = owner, _comm(ot), ot.pid.value_()
            w.owner_state = task_state_to_char(ot)
        except (drgn.FaultError, LookupError, ValueError):
            w.owner, w.owner_comm, w.owner_pid = owner, "?", -1
    return w


class WaitGraph:
    """Edges computed on demand (a task is unwound once): chains from a sleeper, and the cycles among them."""

    def __init__(self, prog) -> None:
        self.prog = prog
        self._edges: dict[int, Wait | None] = {}

    def edge(self, task_addr: int) -> Wait | None:
        if task_addr not in self._edges:
            import drgn

            try:
                self._edges[task_addr] = wait_of(self.prog, drgn.Object(self.prog, "struct task_struct *", task_addr))
            except (drgn.FaultError, LookupError, ValueError):
                self._edges[task_addr] = None
        return self._edges[task_addr]

    def chain(self, task_addr: int, limit: int = 16) -> tuple[list[Wait], int | None]:
        """The waits from `task_addr` along owners; the index in the chain where a cycle closes, if one does.
        Reader-owned rwsems end the chain: the recorded reader need not still hold the lock."""
        out: list[Wait] = []
        at: dict[int, int] = {}
        cur: int | None = task_addr
        while cur is not None and len(out) < limit:
            if cur in at:
                return out, at[cur]
            w = self.edge(cur)
            if w is None:
                break
            at[cur] = len(out)
            out.append(w)
            cur = None if w.reader_owned else w.owner
        return out, None

    def cycles(self, starts: list[int]) -> list[list[Wait]]:
        """Every distinct cycle reachable from the sleepers, each as its list of waits (rotated so the lowest task
        address is first: one cycle reached from several sleepers is reported once)."""
        found: dict[tuple[int, ...], list[Wait]] = {}
        for t in starts:
            ch, closes = self.chain(t)
            if closes is None:
                continue
            cyc = ch[closes:]
            k = min(range(len(cyc)), key=lambda j: cyc[j].task)
            cyc = cyc[k:] + cyc[:k]
            found.setdefault(tuple(w.task for w in cyc), cyc)
        return list(found.values())
