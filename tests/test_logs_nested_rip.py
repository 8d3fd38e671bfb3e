"""A register dump nested inside a call trace (an interrupt or exception taken in the middle of the
stack) gives the interrupted PC: a frame in its place, marked `interrupted` (exact, no offset-1).

Every input is a real file: syzkaller corpus reports (../shared/corpora/syzkaller) and the QEMU lab's
console logs (tests/fixtures/lab). Expected values were read off the files by hand; each test says
which lines it checked.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from ktriage.logs import parse_log_text
from ktriage.logs.guilty import CALL_TRACE, TRACE, StackSpec, walk
from ktriage.model import CrashReport, Report
from ktriage.render.json_out import report_dict
from realdata import REPO, corpus_log

LAB = REPO / "tests" / "fixtures" / "lab"
SCHEMA = json.loads((REPO / "src/ktriage/schema/report-1.json").read_text())


def first(text: str):
    crashes = parse_log_text(text)
    assert crashes, "no crash found"
    return crashes[0]


def lab(name: str) -> str:
    path = LAB / f"{name}.console.log"
    if not path.is_file():
        pytest.fail(f"lab fixture missing: {path}")
    return path.read_text(errors="replace")


def interrupted(c) -> list[tuple[int, str]]:
    return [(i, str(f)) for i, f in enumerate(c.frames) if f.interrupted]


def around(c, i: int) -> tuple[str | None, str | None, str | None]:
    fr = c.frames
    return fr[i - 1].symbol, fr[i].symbol, fr[i + 1].symbol if i + 1 < len(fr) else None


def test_rcu_stall_4x_after_irq_end() -> None:
    """corpus 263 (4.18 RCU stall, NMI backtrace): `apic_timer_interrupt+0xf/0x20`, `</IRQ>`, then
    `RIP: 0010:lock_release+0xa2/0x9f0` and its RSP..R15 lines, then `__might_fault+0x19e/0x1e0`.
    That RIP is also the only kernel-mode one, so it stays the crash's IP; the user-mode
    `RIP: 0033:0x457089` at the end is not a frame."""
    c = first(corpus_log("263"))
    assert interrupted(c) == [(14, "lock_release+0xa2/0x9f0")]
    f = c.frames[14]
    assert (f.offset, f.size, f.reliable, f.section) == (0xA2, 0x9F0, True, "task")
    assert around(c, 14) == ("apic_timer_interrupt", "lock_release", "__might_fault")
    assert c.frames[13].section == "irq" and not c.frames[13].interrupted
    assert str(c.ip) == "lock_release+0xa2/0x9f0"
    assert c.registers["RSP"] == 0xFFFF8801AA0078C8  # the kernel block's, not the user block's 00007f09af65dc78
    assert all(f.symbol for f in c.frames)  # nothing from `RIP: 0033:0x457089`
    assert c.frames[-1].symbol == "entry_SYSCALL_64_after_hwframe"
    # guilty frame unchanged: the frame above the vfs_write anchor
    assert (c.title, c.guilty_frame) == ("INFO: rcu detected stall in snd_seq_write", "snd_seq_write")


def test_lab_6x_task_section_top_rip_stays_ip() -> None:
    """Lab null-member-timer (6.1, NULL deref in a timer on an idle CPU). The oops's own
    `RIP: 0010:crashmod_read_rx_count+0x7/0x10 [crashmod]` precedes `Call Trace:`: it is the IP, not a
    frame. Inside the trace: `<IRQ>` crashmod_timer_fn ... sysvec_apic_timer_interrupt `</IRQ>` `<TASK>`
    `asm_sysvec_apic_timer_interrupt+0x16/0x20`, `RIP: 0010:amd_e400_idle+0x1e/0x50`, Code/RSP/RAX..R15,
    then `default_idle_call+0x21/0x30` down to `secondary_startup_64_no_verify` `</TASK>`."""
    c = first(lab("null-member-timer"))
    assert str(c.ip) == "crashmod_read_rx_count+0x7/0x10 [crashmod]"
    assert c.registers["RSP"] == 0xFFFFAC6F000B0EA8  # the top block's RSP, not the idle task's ffffac6f0007bef0
    assert "crashmod_read_rx_count" not in [f.symbol for f in c.frames]
    assert interrupted(c) == [(7, "amd_e400_idle+0x1e/0x50")]
    assert around(c, 7) == ("asm_sysvec_apic_timer_interrupt", "amd_e400_idle", "default_idle_call")
    assert c.frames[7].section == "task" and c.frames[5].section == "irq"  # sysvec_apic_timer_interrupt
    assert [f.symbol for f in c.frames[-3:]] == [
        "cpu_startup_entry",
        "start_secondary",
        "secondary_startup_64_no_verify",
    ]
    assert (c.guilty_frame, c.context) == ("crashmod_read_rx_count", "softirq")


def test_lab_soft_lockup_has_no_nested_frame() -> None:
    """Lab soft-lockup (6.1): `RIP: 0010:crashmod_spin+0x2/0x10 [crashmod]` before `Call Trace:` (the
    interrupted IP, printed as the oops's own registers), and `RIP: 0033:0x47b7a0` after
    `entry_SYSCALL_64_after_hwframe` (user mode): neither is a frame; the guilty frame stays crashmod_spin."""
    c = first(lab("soft-lockup"))
    assert interrupted(c) == []
    assert str(c.ip) == "crashmod_spin+0x2/0x10 [crashmod]"
    assert [f.symbol for f in c.frames][0] == "crashmod_trigger"
    assert c.frames[-1].symbol == "entry_SYSCALL_64_after_hwframe"
    assert (c.kind, c.title, c.guilty_frame) == ("soft-lockup", "BUG: soft lockup in crashmod_spin", "crashmod_spin")


def test_warning_4x_after_invalid_op() -> None:
    """corpus 140 (4.15 WARNING with panic_on_warn; syzkaller program text interleaved): the panic's
    trace runs dump_stack, panic, __warn, report_bug, fixup_bug, do_error_trap, `do_invalid_op+0x1b/0x20`,
    `invalid_op+0x22/0x40`, then the WARN site as `RIP: 0010:strp_data_ready+0x2b7/0x390` and RSP..R15,
    then two stack-scan leftovers `? strp_data_ready+0x2b7/0x390` and the caller `psock_data_ready+0x56/0x70`."""
    c = first(corpus_log("140"))
    assert interrupted(c) == [(21, "strp_data_ready+0x2b7/0x390")]
    assert around(c, 21) == ("invalid_op", "strp_data_ready", "strp_data_ready")
    assert [(f.symbol, f.reliable, f.interrupted) for f in c.frames[22:25]] == [
        ("strp_data_ready", False, False),
        ("strp_data_ready", False, False),
        ("psock_data_ready", True, False),
    ]
    assert str(c.ip) == "strp_data_ready+0x2b7/0x390"
    assert (c.title, c.guilty_frame) == ("WARNING in strp_data_ready", "strp_data_ready")


def test_several_nested_dumps_in_order() -> None:
    """corpus 612 (5.x RCU stall): `asm_sysvec_apic_timer_interrupt+0x12/0x20` then
    `RIP: 0010:lock_acquire+0x1ef/0x740` (line 14), a page fault inside it: `asm_exc_page_fault+0x1e/0x30`
    then `RIP: 0010:copy_user_generic_string+0x2c/0x40` (line 34), and the timer again at line 66."""
    c = first(corpus_log("612"))
    got = interrupted(c)
    assert [s for _, s in got] == [
        "lock_acquire+0x1ef/0x740",
        "copy_user_generic_string+0x2c/0x40",
        "lock_acquire+0x1ef/0x740",
    ]
    assert [c.frames[i - 1].symbol for i, _ in got] == [
        "asm_sysvec_apic_timer_interrupt",
        "asm_exc_page_fault",
        "asm_sysvec_apic_timer_interrupt",
    ]
    assert c.guilty_frame == "ext4_file_read_iter"


def test_gpf_in_irq_top_rip_is_not_a_frame() -> None:
    """corpus 358 (4.x GPF in a timer softirq): the oops's `RIP: 0010:__x86_indirect_thunk_rax+0x10/0x20`
    is the IP only (line 15); in the trace `apic_timer_interrupt+0x8e/0xa0` `</IRQ>` then
    `RIP: 0010:copy_page_range+0xb82/0x20f0`: the task code the interrupt stopped."""
    c = first(corpus_log("358"))
    assert str(c.ip) == "__x86_indirect_thunk_rax+0x10/0x20"
    assert "__x86_indirect_thunk_rax" not in [f.symbol for f in c.frames]
    assert interrupted(c) == [(5, "copy_page_range+0xb82/0x20f0")]
    assert c.frames[4].symbol == "apic_timer_interrupt"
    assert (c.title, c.guilty_frame) == ("general protection fault in run_timer_softirq", "run_timer_softirq")


def test_arm64_frame_after_el1_vector() -> None:
    """corpus 644 (arm64 5.x): `el1h_64_irq+0x64/0x68` then `preempt_schedule_irq+0x3c/0x130`, and later
    `el1h_64_irq+0x64/0x68` then `vprintk+0x0/0xe4`: the frame after an el1 vector is the PC the
    unwinder took from the saved pt_regs. corpus 568 (arm64 KASAN tag fault): `el1_sync+0x70/0x100`
    then `__memset+0x16c/0x188`. The el1 vectors and their handlers are not marked."""
    c = first(corpus_log("644"))
    got = interrupted(c)
    assert [s for _, s in got] == ["preempt_schedule_irq+0x3c/0x130", "vprintk+0x0/0xe4"]
    assert all(c.frames[i - 1].symbol == "el1h_64_irq" for i, _ in got)
    assert not any(f.interrupted for f in c.frames if f.symbol.startswith("el1"))
    c = first(corpus_log("568"))
    assert [s for _, s in interrupted(c)] == ["__memset+0x16c/0x188"]
    assert c.guilty_frame == "io_submit_sqes"


def test_ppc64_interrupt_line() -> None:
    """corpus 380 (ppc64 WARNING): `program_check_common+0x184/0x190` then
    `--- interrupt: 700 at assert_slb_presence+0x2c/0x70` (followed by `LR = slb_insert_entry+...`)."""
    c = first(corpus_log("380"))
    got = interrupted(c)
    assert [s for _, s in got] == ["assert_slb_presence+0x2c/0x70"]
    assert c.frames[got[0][0] - 1].symbol == "program_check_common"
    assert c.guilty_frame == "assert_slb_presence"


def test_guilty_walk_sees_the_nested_rip_in_order() -> None:
    """The guilty-frame walk reads the nested RIP as a trace entry where it stands (lab
    null-member-timer: asm_sysvec_apic_timer_interrupt, amd_e400_idle, default_idle_call), so a stall's
    anchor walk and a first-non-generic walk see the interrupted function."""
    lines = [ln.split("] ", 1)[1] for ln in lab("null-member-timer").splitlines() if ln.startswith("[") and "] " in ln]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("BUG: kernel NULL pointer"))
    spec = StackSpec((CALL_TRACE, TRACE), extractor=lambda fr: ",".join(fr), keep_generic=True)
    got, _ = walk(lines[start:], spec, None, (), spec.parts)
    names = got.split(",")
    i = names.index("amd_e400_idle")
    assert names[i - 1 : i + 2] == ["asm_sysvec_apic_timer_interrupt", "amd_e400_idle", "default_idle_call"]
    assert "crashmod_read_rx_count" not in names  # the top-level RIP is before `Call Trace:`


def test_json_marks_only_interrupted_frames() -> None:
    """The JSON contract: `interrupted: true` on that frame only; the document stays schema-valid."""
    c = first(corpus_log("263"))
    doc = report_dict(Report(crashes=[CrashReport(c)]))
    jsonschema.validate(doc, SCHEMA)
    frames = doc["crashes"][0]["frames"]
    assert [i for i, f in enumerate(frames) if f.get("interrupted")] == [14]
    assert frames[14]["symbol"] == "lock_release" and frames[14]["offset"] == 0xA2
    assert "interrupted" not in frames[13]
