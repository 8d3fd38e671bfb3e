"""The log reader on production-shaped text: the crash lab's real console logs (a Debian 6.1-based
kernel under QEMU, truth in lab/crashmod/crashmod.c), syzkaller corpus files, and the crash texts
quoted in commit messages that the known-bug fixtures keep. Every input is real text, read as is
or transformed mechanically (cut, indented); the expected values were read off the files by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ktriage.logs import parse_log_text
from ktriage.logs.report import TRUNCATED_TRACE
from test_logs_corpus import case, first

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "tests" / "fixtures" / "lab"
KB = REPO / "tests" / "fixtures" / "kb"


def lab(name: str) -> str:
    return (LAB / f"{name}.console.log").read_bytes().decode("utf-8", "replace")


def lab_lines(name: str) -> list[str]:
    return [ln.rstrip("\r") for ln in lab(name).split("\n")]


def kb(rule: str, name: str = "positive-1.txt") -> str:
    return (KB / rule / name).read_text()


def _hex_after(text: str, rx: str) -> int:
    m = re.search(rx, text)
    assert m, rx
    return int(m.group(1), 16)


def truncation(crash) -> list[str]:
    return [e.text for e in crash.related_events if e.kind == "truncated"]


# --- 1. guilty frames on the lab's console logs ---------------------------------------------


def test_hung_task_names_the_waiting_module_function() -> None:
    # trace: __schedule, schedule, schedule_preempt_disabled, __mutex_lock.constprop.0,
    # crashmod_hung_lock [crashmod], crashmod_trigger [crashmod], ...: crashmod_hung_lock() is the
    # function blocked in mutex_lock(&crashmod_mutex) (crashmod.c). syzkaller's substring rule
    # skips it for its "_lock"; a module frame is the module's own code, not wait machinery.
    c = first(lab("hung-task"))
    assert (c.kind, c.title, c.guilty_frame) == (
        "hung-task",
        "INFO: task hung in crashmod_hung_lock",
        "crashmod_hung_lock",
    )
    assert c.panic == "hung_task: blocked tasks"


def test_hung_task_rule_unchanged_for_builtin_lock_wrappers() -> None:
    # built-in wrappers keep syzkaller's grouping: __down, down, console_lock, console_device
    c = first(case("254")[1])
    assert c.title == "INFO: task hung in console_device"


def test_list_corruption_names_the_caller_of_list_del() -> None:
    # RIP: 0010:__list_del_entry_valid(.cold) (lib/list_debug.c), then crashmod_list_remove
    # [crashmod]: the `list_` skip word must not match inside crashmod_list_remove
    c = first(lab("list-corruption"))
    assert c.kind == "list-corruption"
    assert (c.title, c.guilty_frame) == ("BUG: corrupted list in crashmod_list_remove", "crashmod_list_remove")
    assert c.ip.symbol.startswith("__list_del_entry_valid")


def test_explicit_panic_names_panics_caller() -> None:
    # dump_stack_lvl, panic, crashmod_panic [crashmod], crashmod_trigger: the title is panic()'s
    # message, the guilty frame panic()'s caller (its name holds the generic word "panic")
    c = first(lab("panic"))
    assert (c.kind, c.title, c.guilty_frame) == (
        "panic",
        "kernel panic: crashmod: explicit panic requested",
        "crashmod_panic",
    )


def test_sysrq_panic_guilty_frame() -> None:
    c = first(case("337")[1])  # Kernel panic - not syncing: sysrq triggered crash
    assert (c.title, c.guilty_frame) == ("kernel panic: sysrq triggered crash", "sysrq_handle_crash")


def test_soft_lockup_in_a_module_reached_through_proc() -> None:
    # RIP: 0010:crashmod_spin [crashmod]; trace crashmod_trigger, crashmod_write, proc_reg_write,
    # vfs_write (anchor): the anchor convention gives the /proc dispatcher proc_reg_write
    c = first(lab("soft-lockup"))
    assert (c.kind, c.title, c.guilty_frame) == ("soft-lockup", "BUG: soft lockup in crashmod_spin", "crashmod_spin")
    assert (c.ip.symbol, c.ip.module) == ("crashmod_spin", "crashmod")


def test_stall_anchor_kept_when_the_ip_is_generic() -> None:
    c = first(case("491")[1])  # RIP in __sanitizer_cov_trace_pc, anchor walk lands on kernfs_fop_open
    assert c.title == "INFO: rcu detected stall in kernfs_fop_open"


# --- 2. the crash's register block, not the user-mode one -----------------------------------


def test_registers_from_kernel_block_not_user_block_662() -> None:
    # lines 60-72: RIP: 0010:klist_next, RSP: 0018:ffffc900038cfa60, RBP 0, R09 0, no ORIG_RAX;
    # lines 101-108: RIP: 0033:0x7fc4826295e9, RSP: 002b:00007ffc510e6b08 ... ORIG_RAX: e7, R09 7ffc510e65d0
    c = first(case("662")[1])
    r = c.registers
    assert (r["RSP"], r["RBP"], r["R09"], r["CR2"]) == (0xFFFFC900038CFA60, 0, 0, 0x7FC482680078)
    assert "ORIG_RAX" not in r
    assert str(c.ip) == "klist_next+0x49/0x510"
    assert c.code.raw.startswith("00 fc ff df 48 c1 ea 03") and c.code.data[c.code.trap_offset] == 0x80


def test_kernel_code_line_after_user_block_113() -> None:
    # 4.x: kernel block (lines 13-19, RSP ffff8801d9fdf270), user block (52-58), then the kernel's
    # Code: (ud2 at the mark: BUG) and the summary `RIP: skb_pull+0xd5/0xf0 RSP: ffff8801d9fdf270`
    c = first(case("113")[1])
    r = c.registers
    assert (r["RSP"], r["RBP"], r["R13"]) == (0xFFFF8801D9FDF270, 0xFFFF8801D9FDF288, 0x64)
    assert "ORIG_RAX" not in r
    assert str(c.ip) == "skb_pull+0xd5/0xf0"
    assert c.code.raw.startswith("a3 d0 00 00 00 e8 0c 55 58 fd")
    assert c.code.data[c.code.trap_offset : c.code.trap_offset + 2] == b"\x0f\x0b"


def test_compat_user_ip_is_not_the_crash_ip_565() -> None:
    c = first(case("565")[1])  # only `RIP: 0023:0xe` (a 32-bit task's user IP) and its Code:
    assert c.ip is None and c.code is None and c.registers == {}


@pytest.mark.parametrize("name", ["hung-task", "panic"])
def test_lab_reports_without_kernel_registers(name: str) -> None:
    # the only register block is the syscall's user-mode one (RIP: 0033:0x47b7a0)
    assert "RIP: 0033:" in lab(name) and "RIP: 0010:" not in lab(name)
    c = first(lab(name))
    assert c.ip is None and c.registers == {} and c.code is None


@pytest.mark.parametrize("name", ["list-corruption", "soft-lockup"])
def test_lab_registers_are_the_kernel_blocks(name: str) -> None:
    text = lab(name).replace("\r", "")
    c = first(text)
    assert c.registers["RSP"] == _hex_after(text, r"RSP: 0018:([0-9a-f]{16})")
    assert c.registers["RSP"] != _hex_after(text, r"RSP: 002b:([0-9a-f]{16})")
    assert "ORIG_RAX" not in c.registers  # only the user block has it here
    kernel_code = re.search(r"RIP: 0010:.*\n.*Code: (.*)", text).group(1).strip()
    assert c.code.raw.strip() == kernel_code


# --- 3. indented, untimestamped excerpts (commit messages, mails) ----------------------------


def test_indented_warning_excerpt_two_spaces() -> None:
    # openvswitch fix 3c1860543fcc: header cut after file:line, RIP line, frames indented further
    c = first(kb("ovs-ct-helper-on-confirmed-conn-warn"))
    assert (c.kind, c.title, c.guilty_frame) == ("warning", "WARNING in nf_ct_ext_add", "nf_ct_ext_add")
    assert (c.ip.symbol, c.ip.module) == ("nf_ct_ext_add", "nf_conntrack")
    names = [f.symbol for f in c.frames]
    assert names.index("__nf_ct_try_assign_helper") < names.index("__ovs_ct_lookup")
    assert not c.corrupted


def test_tab_indented_warning_excerpt_without_call_trace_keyword() -> None:
    # virtio_net fix f8321fa75102: tab+space indentation, a blank line, frames, no RIP/Call Trace
    c = first(kb("virtio-net-napi-skb-cache-put-netpoll-warn"))
    assert (c.kind, c.title, c.guilty_frame) == ("warning", "WARNING in napi_skb_cache_put", "napi_skb_cache_put")
    assert "__free_old_xmit" in [f.symbol for f in c.frames]
    assert not c.corrupted


def test_an_excerpt_ends_where_its_indentation_does() -> None:
    text = kb("ovs-ct-helper-on-confirmed-conn-warn") + kb("virtio-net-napi-skb-cache-put-netpoll-warn")
    a, b = parse_log_text(text)
    assert a.title == "WARNING in nf_ct_ext_add" and a.source.last_line == 13
    assert b.title == "WARNING in napi_skb_cache_put" and b.source.first_line == 14


@pytest.mark.parametrize("indent", ["  ", " ", "\t", "    "])
def test_indented_untimestamped_corpus_report(indent: str) -> None:
    # corpus 358 without its timestamps, every line indented the same way
    lines = [re.sub(r"^\[\s*\d+\.\d+\]\s?", "", ln) for ln in case("358")[1].splitlines()]
    start = next(i for i, ln in enumerate(lines) if "general protection fault" in ln)
    c = first("\n".join(indent + ln for ln in lines[start:]))
    assert (c.kind, c.title, c.guilty_frame) == (
        "gpf",
        "general protection fault in run_timer_softirq",
        "run_timer_softirq",
    )


# --- 4. a log that ends inside the call trace -----------------------------------------------


def test_eof_inside_the_trace_is_reported() -> None:
    lines = lab_lines("list-corruption")
    cut = next(i for i, ln in enumerate(lines) if "crashmod_trigger+" in ln)
    c = first("\n".join(lines[: cut + 1]))
    assert c.title == "BUG: corrupted list in crashmod_list_remove"
    assert truncation(c) == [f"{TRUNCATED_TRACE}, after crashmod_trigger+0x1ac/0x2ca [crashmod]"]
    assert not c.corrupted  # the top frames came first: the title stands (syzkaller convention)
    assert [e.line for e in c.related_events if e.kind == "truncated"] == [cut + 1]


def test_eof_after_the_entry_frame_is_not_truncation() -> None:
    lines = lab_lines("list-corruption")
    cut = next(i for i, ln in enumerate(lines) if "entry_SYSCALL_64_after_hwframe" in ln)
    assert not truncation(first("\n".join(lines[: cut + 1])))


def test_whole_lab_logs_are_not_truncated() -> None:
    for p in sorted(LAB.glob("*.console.log")):
        for c in parse_log_text(p.read_bytes().decode("utf-8", "replace")):
            assert not truncation(c), p.name


def test_corpus_excerpt_cut_in_its_trace_keeps_corrupted_false() -> None:
    hdr, log = case("69")  # ends at `tty_ldisc_hangup+0x21f/0x720`; syzkaller: not corrupted
    c = first(log)
    assert c.corrupted is (hdr.get("CORRUPTED", ["N"])[0] == "Y") is False
    assert truncation(c) == [f"{TRUNCATED_TRACE}, after tty_ldisc_hangup+0x21f/0x720"]


def test_kmemleak_backtrace_is_not_truncation() -> None:
    c = first(case("310")[1])  # kmemleak prints at most 16 entries: no entry frame at the end
    assert c.kind == "memory-leak" and not truncation(c)
