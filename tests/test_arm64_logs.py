"""arm64 console logs of the crash lab (tests/fixtures/lab-arm64/, committed verbatim: CRLF, QEMU `virt`,
linux-source-6.1 cross-built for arm64, `lab/lab.py arm64`) read by the log reader alone (no lab needed).

Every expected value was read by hand from the fixture text; instruction words were decoded by hand from
the A64 encoding (LDR immediate, unsigned offset, 64-bit: 0xf9400000 | imm12 << 10 | Rn << 5 | Rt, address
Rn + imm12 * 8; BRK: 0xd4200000 | imm16 << 5). The fixtures come from one lab run (crashmod.c of commit
8bc5b32); `python3 lab/lab.py fixtures arm64` replaces them (registers, pids, offsets change with every run
and build): re-read the values below by hand when doing so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIX = Path(__file__).resolve().parent / "fixtures" / "lab-arm64"


def _report(name: str):
    from ktriage.pipeline import Options, analyze_paths

    path = FIX / f"{name}.console.log"
    rep = analyze_paths([str(path)], Options())
    assert rep.crashes, f"no crash read from {path}"
    return rep.crashes[0]


def _find(cr, code):
    return [f for f in cr.findings if f.code == code]


# name -> kind, title, guilty, pc (`pc :` line), fault address, task (comm, pid, cpu), context
EXPECT = {
    "null-member": (
        "null-deref",
        "BUG: unable to handle kernel NULL pointer dereference in crashmod_read_rx_count",
        "crashmod_read_rx_count",
        "crashmod_read_rx_count+0x4/0x10 [crashmod]",
        0xA30,
        ("lab-trigger", 32, 1),
        "process",
    ),
    "null-member-timer": (
        "null-deref",
        "BUG: unable to handle kernel NULL pointer dereference in crashmod_read_rx_count",
        "crashmod_read_rx_count",
        "crashmod_read_rx_count+0x4/0x10 [crashmod]",
        0xA30,
        ("lab-trigger", 32, 1),
        "softirq",
    ),
    "null-member-work": (
        "null-deref",
        "BUG: unable to handle kernel NULL pointer dereference in crashmod_read_rx_count",
        "crashmod_read_rx_count",
        "crashmod_read_rx_count+0x4/0x10 [crashmod]",
        0xA30,
        ("kworker/0:1", 13, 0),
        "process",
    ),
    "netfilter-udp": (
        "null-deref",
        "BUG: unable to handle kernel NULL pointer dereference in crashmod_account_skb",
        "crashmod_account_skb",
        "crashmod_account_skb+0x8/0x1c [crashmod]",
        0xA38,
        ("udpsend", 32, 0),
        "process",
    ),
    # `Unable to handle kernel paging request at virtual address 006b6b6b6b6b6b6b`: the kernel prints the
    # untagged address (bits 63..56 from bit 55) of the poisoned pointer 0x6b6b6b6b6b6b6b6b
    "uaf-poison": (
        "paging-request",
        "BUG: unable to handle kernel paging request in crashmod_obj_dispatch",
        "crashmod_obj_dispatch",
        "crashmod_obj_dispatch+0xc/0x20 [crashmod]",
        0x006B6B6B6B6B6B6B,
        ("lab-trigger", 32, 0),
        "process",
    ),
    "oob-small-object": (
        "paging-request",
        "BUG: unable to handle kernel paging request in crashmod_sock_release",
        "crashmod_sock_release",
        "crashmod_sock_release+0x8/0x20 [crashmod]",
        0x006B6B6B6B6B6B73,
        ("lab-trigger", 32, 1),
        "process",
    ),
    "list-corruption": (
        "list-corruption",
        "BUG: corrupted list in crashmod_list_remove",
        "crashmod_list_remove",
        "__list_del_entry_valid+0xc0/0xe0",
        None,
        ("lab-trigger", 32, 1),
        "process",
    ),
    "bug-on": (
        "bug",
        "kernel BUG in crashmod_check_state",
        "crashmod_check_state",
        "crashmod_check_state+0xc/0x10 [crashmod]",
        None,
        ("lab-trigger", 33, 1),
        "process",
    ),
    "warn": (
        "warning",
        "WARNING in crashmod_warn",
        "crashmod_warn",
        "crashmod_warn+0xc/0x14 [crashmod]",
        None,
        ("lab-trigger", 33, 0),
        "process",
    ),
    "soft-lockup": (
        "soft-lockup",
        "BUG: soft lockup in crashmod_spin",
        "crashmod_spin",
        "crashmod_spin+0x0/0x10 [crashmod]",
        None,
        ("lab-trigger", 33, 1),
        "process",
    ),
    "hung-task": (
        "hung-task",
        "INFO: task hung in crashmod_hung_lock",
        "crashmod_hung_lock",
        None,
        None,
        ("lab-trigger", 33, 0),
        "process",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_arm64_kind_title_guilty_pc(name):
    kind, title, guilty, pc, fault, (comm, pid, cpu), context = EXPECT[name]
    c = _report(name).crash
    assert c.arch == "arm64"
    assert (c.kind, c.title, c.guilty_frame) == (kind, title, guilty)
    assert (str(c.ip) if c.ip else None) == pc
    assert c.fault_address == fault
    assert (c.task.comm, c.task.pid, c.task.cpu) == (comm, pid, cpu)
    assert c.context == context
    assert c.kernel.release == "6.1.192" and c.kernel.hardware == "linux,dummy-virt (DT)"
    if pc:  # a register dump: `Modules linked in: crashmod(O)`, and the trapping pc again as the first
        assert "crashmod" in c.modules and str(c.frames[0]) == pc  # Call trace entry (the hung-task report has neither)


def test_arm64_null_member_registers_and_code():
    cr = _report("null-member")
    c = cr.crash
    # the dump: `sp : ffff800008163cd0`, `x29: ffff800008163cd0 x28: ffff094480d6d000 ...`,
    # `x22: 000000000000000b`, `x1 : ffffa3ec948b5120 x0 : 0000000000000000`, `pstate: 00000005 (nzcv daif ...)`
    r = c.registers
    assert set(r) == {f"x{i}" for i in range(30)} | {"sp", "pstate"}  # x30 is only `lr : sym+off`
    assert r["x0"] == 0 and r["x1"] == 0xFFFFA3EC948B5120 and r["x22"] == 0xB and r["x28"] == 0xFFFF094480D6D000
    assert r["sp"] == r["x29"] == 0xFFFF800008163CD0 and r["pstate"] == 0x5
    assert c.access == "read"  # `WnR = 0`
    # `Code: cccccccc cccccccc cccccccc f9407800 (f9451800)`: words little-endian in memory, the marked one last
    assert c.code.trap_offset == 16 and c.code.data[12:] == bytes.fromhex("007840f9001845f9")
    # f9451800: imm12 = 0x146 -> 0x146 * 8 = 0xa30, Rn = 0, Rt = 0: ldr x0, [x0, #0xa30]
    [trap] = _find(cr, "insn.trap")
    assert trap.data["mnemonic"] == "ldr" and trap.data["operands"] == "x0, [x0, #0xa30]"
    [acc] = _find(cr, "insn.bad-access")
    assert (acc.data["base"], acc.data["disp"], acc.data["size"], acc.data["access"]) == ("x0", 0xA30, 8, "read")
    assert acc.data["ea"] == 0xA30 and acc.data["match"] is True
    assert [f.symbol for f in c.frames] == [
        "crashmod_read_rx_count",
        "crashmod_write",
        "proc_reg_write",
        "vfs_write",
        "ksys_write",
        "__arm64_sys_write",
        "do_el0_svc",
        "el0_svc",
        "el0t_64_sync_handler",
        "el0t_64_sync",
    ]


@pytest.mark.parametrize(
    "name, insn, base, disp, base_value",
    [
        # f9451c40: imm12 = 0x147 -> 0xa38, Rn = 2, Rt = 0; `x2 : 0000000000000000`
        ("netfilter-udp", "x0, [x2, #0xa38]", "x2", 0xA38, 0),
        # f9400001: imm12 = 0, Rn = 0, Rt = 1; `x0 : 6b6b6b6b6b6b6b6b` (obj->ops of the freed, poisoned object)
        ("uaf-poison", "x1, [x0]", "x0", 0, 0x6B6B6B6B6B6B6B6B),
        # f9400401: imm12 = 1 -> 8, Rn = 0, Rt = 1; `x0 : a56b6b6b6b6b6b6b` (read at 0x230 of a 64-byte object)
        ("oob-small-object", "x1, [x0, #8]", "x0", 8, 0xA56B6B6B6B6B6B6B),
    ],
)
def test_arm64_faulting_load(name, insn, base, disp, base_value):
    cr = _report(name)
    [trap] = _find(cr, "insn.trap")
    assert trap.data["mnemonic"] == "ldr" and trap.data["operands"] == insn
    [acc] = _find(cr, "insn.bad-access")
    assert (acc.data["base"], acc.data["disp"]) == (base, disp)
    assert acc.data["values"][base] == base_value == cr.crash.registers[base]
    # the faulting access even when the kernel printed the address untagged (top byte from bit 55)
    assert acc.data["match"] is True


@pytest.mark.parametrize("name", ["bug-on", "list-corruption"])
def test_arm64_brk_bug(name):
    cr = _report(name)
    # `Code: ... (d4210000)`: BRK, imm16 = (0xd4210000 >> 5) & 0xffff = 0x800 = BUG_BRK_IMM
    assert cr.crash.code.raw.strip().endswith("(d4210000)")
    [trap] = _find(cr, "insn.trap")
    assert trap.data["mnemonic"] == "brk" and trap.data["operands"] == "#0x800"
    assert _find(cr, "insn.trap-bug")


def test_arm64_interrupted_frame_in_timer_trace():
    """null-member-timer: the timer softirq ran on the irq stack of an interrupt taken in exit_files
    (`el1h_64_irq+0x64/0x68` then `exit_files+0x3c/0xa0`): that entry is the interrupted pc (exact)."""
    c = _report("null-member-timer").crash
    names = [f.symbol for f in c.frames]
    k = names.index("el1h_64_irq")
    assert names[k + 1] == "exit_files" and c.frames[k + 1].interrupted
    assert not any(f.interrupted for f in c.frames[: k + 1])
    assert names[:3] == ["crashmod_read_rx_count", "call_timer_fn.constprop.0", "run_timer_softirq"]


def test_arm64_panic():
    c = _report("panic").crash
    assert (c.kind, c.title) == ("panic", "kernel panic: crashmod: explicit panic requested")
    assert c.panic == "crashmod: explicit panic requested"
    # `panic+0x160/0x314` then `crashmod_trigger+0x0/0x2e8 [crashmod]`: panic() is noreturn, so the return
    # address after `bl panic` at the very end of crashmod_panic is the first byte of the next function;
    # only debug info can say it is crashmod_panic (tests/lab/test_arm64_debuginfo.py checks it)
    syms = [str(f) for f in c.frames]
    assert syms[4:6] == ["panic+0x160/0x314", "crashmod_trigger+0x0/0x2e8 [crashmod]"]


@pytest.mark.parametrize("name", ["null-member", "bug-on"])
def test_arm64_oops_is_one_crash(name):
    """arm64's die() panics with `Oops: Fatal exception` / `Oops - BUG: Fatal exception`: the oops' trailer, not a
    second crash (x86 words it `Fatal exception`)."""
    from ktriage.pipeline import Options, analyze_paths

    rep = analyze_paths([str(FIX / f"{name}.console.log")], Options(analyze=False))
    assert len(rep.crashes) == 1, [c.crash.title for c in rep.crashes]


def test_arm64_fault_address_with_top_byte_ignored():
    """uaf-poison on arm64 (lab fixture, checked by hand): `Code: ... (f9400001)` is `ldr x1, [x0]`, x0 =
    6b6b6b6b6b6b6b6b (slab poison), and the kernel reports `virtual address 006b6b6b6b6b6b6b`: the same access
    with the top byte cleared (TBI). The finding says so instead of printing two different numbers as equal."""
    from ktriage.pipeline import Options, analyze_paths

    rep = analyze_paths([str(FIX / "uaf-poison.console.log")], Options())
    [acc] = [f for f in rep.crashes[0].findings if f.code == "insn.bad-access"]
    assert acc.data["match"] is True and acc.data["untagged"] is True
    assert acc.data["fault"] == 0x006B6B6B6B6B6B6B and acc.data["ea"] == 0x6B6B6B6B6B6B6B6B
    assert "top byte ignored (arm64 TBI)" in acc.summary
