"""Real vmcores from the crash lab (lab/lab.py), opened with drgn.

Only facts that do not depend on a particular build are asserted: the crashed thread's frames, the
module name, offsets of struct members, the packet's ports, slab cache names, console key lines.
Never addresses.
"""

from __future__ import annotations

import re

import pytest

drgn = pytest.importorskip("drgn")
from drgn.helpers.linux.printk import get_dmesg  # noqa: E402

UDP_SPORT, UDP_DPORT = 5555, 4789


def frame_names(trace) -> list[str]:
    return [f.name or hex(f.pc) for f in trace]


def crashed_frames(prog) -> list[str]:
    return frame_names(prog.crashed_thread().stack_trace())


def dmesg(prog) -> str:
    return get_dmesg(prog).decode("utf-8", "replace")


def test_manifest_lists_every_scenario(lab):
    expected = {
        "null-member",
        "null-member-timer",
        "null-member-work",
        "netfilter-udp",
        "uaf-poison",
        "list-corruption",
        "oob-small-object",
        "hung-task",
        "soft-lockup",
        "bug-on",
        "warn",
        "panic",
    }
    assert expected <= set(lab["scenarios"])
    bad = [n for n in expected if not lab["scenarios"][n].get("ok")]
    assert not bad, f"lab scenarios without a good run: {bad}"


@pytest.mark.parametrize(
    "name",
    [
        "null-member",
        "null-member-timer",
        "null-member-work",
        "netfilter-udp",
        "uaf-poison",
        "list-corruption",
        "oob-small-object",
        "hung-task",
        "soft-lockup",
        "bug-on",
        "warn",
        "panic",
    ],
)
def test_vmcore_is_makedumpfile_kdump(lab_scenario, lab_program, name):
    s = lab_scenario(name)
    with open(s["vmcore"], "rb") as f:
        assert f.read(8) == b"KDUMP   ", "in-guest kdump writes makedumpfile's compressed kdump format"
    prog = lab_program(name)
    assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
    assert "crashmod" in dmesg(prog)


def test_null_member_process_context(lab_program):
    prog = lab_program("null-member")
    frames = crashed_frames(prog)
    assert frames[0] == "crashmod_read_rx_count"
    assert "crashmod_write" in frames and "vfs_write" in frames
    thread = prog.crashed_thread()
    assert thread.object.comm.string_() == b"sh"
    # the faulting load is dev->rx_count at offset 0xa30, dev loaded from port->dev at 0xf0
    assert drgn.offsetof(prog.type("struct crashmod_dev"), "rx_count") == 0xA30
    assert drgn.offsetof(prog.type("struct crashmod_port"), "dev") == 0xF0
    regs = thread.stack_trace()[0].registers()
    assert regs["rax"] == 0, "the NULL base register"
    port = prog["crashmod_port"]
    assert port.dev.value_() == 0
    assert regs["rdi"] == port.value_(), "first argument is the port"
    assert "BUG: kernel NULL pointer dereference, address: 0000000000000a30" in dmesg(prog)
    # the faulting instruction: mov 0xa30(%rax),%rax -> 48 8b 80 30 0a 00 00
    pc = thread.stack_trace()[0].pc
    assert prog.read(pc, 7) == bytes.fromhex("488b80300a0000")


def test_null_member_timer_softirq(lab_program):
    prog = lab_program("null-member-timer")
    frames = crashed_frames(prog)
    assert frames[0] == "crashmod_read_rx_count"
    assert "crashmod_timer_fn" in frames
    assert "call_timer_fn" in frames or "__run_timers" in frames
    assert any("softirq" in f for f in frames), "runs in softirq (timer) context"


def test_null_member_workqueue(lab_program):
    prog = lab_program("null-member-work")
    frames = crashed_frames(prog)
    assert frames[0] == "crashmod_read_rx_count"
    assert "crashmod_work_fn" in frames and "process_one_work" in frames
    assert prog.crashed_thread().object.comm.string_().startswith(b"kworker/")


def _skb_ports(prog, skb) -> tuple[int, int, int]:
    import socket

    iph = drgn.Object(prog, "struct iphdr *", skb.head.value_() + skb.network_header.value_())
    udph = drgn.Object(prog, "struct udphdr *", iph.value_() + iph.ihl.value_() * 4)
    return (iph.protocol.value_(), socket.ntohs(udph.source.value_()), socket.ntohs(udph.dest.value_()))


def test_netfilter_udp_skb_recovered_from_stack(lab_program):
    prog = lab_program("netfilter-udp")
    trace = prog.crashed_thread().stack_trace()
    frames = frame_names(trace)
    assert frames[0] == "crashmod_account_skb"
    assert prog.crashed_thread().object.comm.string_() == b"udpsend"
    assert "crashmod_nf_hook" in frames and "nf_hook_slow" in frames
    assert any(f in frames for f in ("__ip_local_out", "ip_local_out", "ip_send_skb", "udp_send_skb"))
    # recover the sk_buff from some frame and decode the packet in flight
    found = None
    for frame in trace:
        try:
            skb = frame["skb"]
        except (KeyError, LookupError):
            continue
        if skb.absent_:
            continue
        try:
            found = _skb_ports(prog, skb)
            payload_len = skb.len.value_()
        except drgn.FaultError:
            continue
        break
    assert found is not None, f"no frame with a readable skb in {frames}"
    assert found == (17, UDP_SPORT, UDP_DPORT)
    assert payload_len == 20 + 8 + len("ktriage-lab")


def test_uaf_poison_named_cache(lab_program):
    from drgn.helpers.linux.slab import find_slab_cache, slab_object_info

    prog = lab_program("uaf-poison")
    trace = prog.crashed_thread().stack_trace()
    assert frame_names(trace)[0] == "crashmod_obj_dispatch"
    assert "general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b" in dmesg(prog)
    cache = find_slab_cache(prog, "crashmod_obj")
    assert cache is not None, "slab_nomerge keeps the module's cache by name"
    # the object is in rdi... or already overwritten; find it through the frame or the registers
    regs = trace[0].registers()
    candidates = [v for v in regs.values() if v > 0xFFFF000000000000]
    infos = []
    for addr in candidates:
        info = slab_object_info(prog, addr)
        if info and info.slab_cache.name.string_() == b"crashmod_obj":
            infos.append(info)
    assert infos, "a register points into the crashmod_obj cache"
    assert not infos[0].allocated, "the object was freed before use"


def test_list_corruption(lab_program):
    prog = lab_program("list-corruption")
    frames = crashed_frames(prog)
    assert "crashmod_list_remove" in frames
    assert frames.index("crashmod_list_remove") <= 3
    log = dmesg(prog)
    assert "list_del corruption" in log
    assert "LIST_POISON1 (dead000000000100)" in log


def test_oob_small_object_read_as_larger_type(lab_program):
    from drgn.helpers.linux.slab import slab_object_info

    prog = lab_program("oob-small-object")
    trace = prog.crashed_thread().stack_trace()
    assert frame_names(trace)[0] == "crashmod_sock_release"
    assert drgn.offsetof(prog.type("struct crashmod_sock"), "reuse_cb") == 0x230
    assert prog.type("struct crashmod_req").size == 64
    regs = trace[0].registers()
    info = slab_object_info(prog, regs["rdi"])
    assert info is not None and info.slab_cache.name.string_() == b"crashmod_req"
    assert info.allocated
    req = drgn.Object(prog, "struct crashmod_req *", regs["rdi"])
    assert req.state.value_() == 12, "state says: a request, not a full sock"
    # the member at 0x230 lies in another (free, poisoned) object of the cache
    other = slab_object_info(prog, regs["rdi"] + 0x230)
    assert other is not None and other.address != info.address
    assert re.search(r"general protection fault, probably for non-canonical address 0x[0-9a-f]*6b6b6b6b", dmesg(prog))


def test_hung_task(lab_program):
    from drgn.helpers.linux.pid import for_each_task

    prog = lab_program("hung-task")
    frames = crashed_frames(prog)
    assert "check_hung_uninterruptible_tasks" in frames or "watchdog" in frames
    assert prog.crashed_thread().object.comm.string_() == b"khungtaskd"
    log = dmesg(prog)
    assert re.search(r"INFO: task sh:\d+ blocked for more than \d+ seconds", log)
    assert "Kernel panic - not syncing: hung_task: blocked tasks" in log
    blocked = holder = None
    for task in for_each_task(prog):
        names = frame_names(prog.stack_trace(task))
        if "crashmod_hung_lock" in names:
            blocked = (task, names)
        if task.comm.string_() == b"crashmod_holder":
            holder = task
    assert blocked is not None and any("mutex_lock" in n for n in blocked[1])
    assert holder is not None
    owner = prog["crashmod_mutex"].owner.counter.value_() & 0xFFFFFFFFFFFFFFF8
    assert owner == holder.value_(), "the mutex is held by crashmod_holder"


def test_soft_lockup(lab_program):
    prog = lab_program("soft-lockup")
    trace = prog.crashed_thread().stack_trace()
    frames = frame_names(trace)
    assert "crashmod_spin" in frames
    assert "watchdog_timer_fn" in frames
    assert re.search(r"watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s! \[sh:\d+\]", dmesg(prog))


def test_bug_on(lab_program):
    prog = lab_program("bug-on")
    frames = crashed_frames(prog)
    assert frames[0] == "crashmod_check_state"
    assert re.search(r"kernel BUG at \S*crashmod\.c:\d+!", dmesg(prog))


def test_warn_panic_on_warn(lab_program):
    prog = lab_program("warn")
    frames = crashed_frames(prog)
    assert "panic" in frames and "crashmod_warn" in frames
    log = dmesg(prog)
    assert re.search(r"WARNING: CPU: \d+ PID: \d+ at \S*crashmod\.c:\d+ crashmod_warn", log)
    assert "panic_on_warn set" in log


def test_explicit_panic(lab_program):
    prog = lab_program("panic")
    frames = crashed_frames(prog)
    assert "panic" in frames and "crashmod_panic" in frames
    assert "Kernel panic - not syncing: crashmod: explicit panic requested" in dmesg(prog)


@pytest.mark.parametrize("name,guilty", [("null-member", "crashmod_read_rx_count"), ("panic", "crashmod_panic")])
def test_qemu_elf_dump(lab_program, name, guilty):
    """QEMU's dump-guest-memory ELF: registers at dump time, the faulting frame is interrupted=True."""
    prog = lab_program(name, "qemu_elf")
    trace = prog.crashed_thread().stack_trace()
    frames = frame_names(trace)
    assert guilty in frames
    assert "panic" in frames
    if name == "null-member":
        interrupted = [f.name for f in trace if f.interrupted and f.name]
        assert guilty in interrupted, "the faulting frame is entered through the page-fault exception"
