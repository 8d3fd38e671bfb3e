"""Golden tests of the `crash` output reader on real text only.

Every expected value was read by hand in the seed/fixture text; the comment next to it names the
line (1-based, as `cat -n` numbers the file) it was checked against.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ktriage.crashout import looks_like_crash_output, parse_crash_output
from realdata import seed

FIXTURES = Path(__file__).parent / "fixtures" / "crashout"


def _seed(name: str) -> str:
    return seed(name.split("_")[0]).read_text(encoding="utf-8")


def _one(text: str, path: str = "doc"):
    crashes = parse_crash_output(text, path)
    assert len(crashes) == 1, crashes
    return crashes[0]


# --- detection -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["000_3ac917ef54f6f6d4.txt", "003_e2dd96d54693228d.txt", "004_c6a14afccd65d4ab.txt"])
def test_detects_crash_output(seed: str) -> None:
    assert looks_like_crash_output(_seed(seed))


@pytest.mark.parametrize("seed", ["001_cf1c8d318f3704b8.txt", "002_3bca64622ed74ee8.txt"])
def test_no_crash_output_in_dmesg_or_prose(seed: str) -> None:
    # 001 is an arm64 dmesg with prose, 002 prose and C code: no prompt, no sys header, no bt
    text = _seed(seed)
    assert not looks_like_crash_output(text)
    assert parse_crash_output(text, seed) == []


# --- seed 003: RHEL 6.4, `sys` banner + `bt` with an IRQ stack (NBSP-aligned blog text) ------------


def test_seed_003_sys_and_bt() -> None:
    c = _one(_seed("003_e2dd96d54693228d.txt"), "003")
    # l.70  PANIC: "BUG: unable to handle kernel NULL pointer dereference at (null)"
    assert c.kind == "null-deref"
    assert c.panic == "BUG: unable to handle kernel NULL pointer dereference at (null)"
    assert c.fault_address == 0  # "at (null)"
    # l.97  [exception RIP: nf_queue+152]  (decimal: 152 = 0x98)
    assert c.ip is not None
    assert (c.ip.symbol, c.ip.offset, c.ip.module) == ("nf_queue", 0x98, None)
    # l.98  RIP: ffffffff81475718  RSP: ffff8800618a3b60  RFLAGS: 00010207
    assert c.ip.address == 0xFFFFFFFF81475718
    assert c.registers["RIP"] == 0xFFFFFFFF81475718
    assert c.registers["RSP"] == 0xFFFF8800618A3B60
    assert c.registers["RFLAGS"] == 0x10207
    # l.99  RAX: 0000000000000020  RBX: 0000000000000000  RCX: ffff8810638a3c00
    assert c.registers["RAX"] == 0x20 and c.registers["RBX"] == 0 and c.registers["RCX"] == 0xFFFF8810638A3C00
    # l.101 RBP: ffff8800618a3bd0   R8: 0000000000021773   R9: 0000000000000001
    assert c.registers["R8"] == 0x21773 and c.registers["R9"] == 1
    # l.103 R15: 0000000000000000 ; l.104 ORIG_RAX: ffffffffffffffff  CS: 0010  SS: 0018
    assert c.registers["R15"] == 0
    assert c.registers["ORIG_RAX"] == 0xFFFFFFFFFFFFFFFF and c.registers["CS"] == 0x10 and c.registers["SS"] == 0x18
    # the second exception block (l.120-127, intel_idle+222) is the interrupted idle task: not the crash
    assert c.registers["RAX"] != 0
    assert c.guilty_frame == "nf_queue"
    assert c.title == "BUG: unable to handle kernel NULL pointer dereference in nf_queue"
    # l.87  PID: 0  TASK: ffff882069324080  CPU: 5  COMMAND: "swapper" (same as sys l.71-74)
    assert (c.task.comm, c.task.pid, c.task.cpu) == ("swapper", 0, 5)
    # l.111-113 ixgbe_poll -> net_rx_action -> __do_softirq on the path below the exception
    assert c.context == "softirq"
    # l.66 RELEASE, l.67 VERSION, l.68 MACHINE
    assert c.kernel.release == "2.6.32-358.el6.x86_64"
    assert c.kernel.build == "#1 SMP Tue Jan 29 11:47:41 EST 2013"
    assert c.kernel.distro == "el6"
    assert c.kernel.hardware == "x86_64 (2499 Mhz)"
    assert c.arch == "x86_64"
    # l.58 KERNEL: (first line of the sys header) .. l.129 #24 cpu_idle (last bt line)
    assert (c.source.first_line, c.source.last_line, c.source.format) == (58, 129, "crash-output")
    # frames l.88-96 (#0-#8) machinery, l.105-117 (#9-#21) on the IRQ stack, l.118 switch, l.119-129 task
    names = [f.symbol for f in c.frames]
    assert len(names) == 25
    assert names[0] == "machine_kexec" and names[8] == "page_fault" and names[9] == "nf_hook_slow"
    assert names[21] == "do_IRQ" and names[22] == "ret_from_intr" and names[24] == "cpu_idle"
    assert [f.section for f in c.frames[:9]] == ["exception"] * 9
    assert {f.section for f in c.frames[9:22]} == {"irq"}
    assert {f.section for f in c.frames[22:]} == {"task"}
    # l.88 #0 [ffff8800618a3750] machine_kexec at ffffffff81035b7b ; l.111 ... ixgbe_poll at ffffffffa015e44c [ixgbe]
    assert c.frames[0].address == 0xFFFFFFFF81035B7B
    ixgbe = c.frames[15]
    assert (ixgbe.symbol, ixgbe.module, ixgbe.address) == ("ixgbe_poll", "ixgbe", 0xFFFFFFFFA015E44C)
    # l.60 CPUS: 40 is kept with the whole sys header; l.135-137 the `dis -l` listing is attached
    sys_ev = [e for e in c.related_events if e.kind == "crash-sys"]
    assert sys_ev and "CPUS: 40" in sys_ev[0].text and sys_ev[0].line == 58
    dis = [e for e in c.related_events if e.kind == "crash-dis"]
    assert len(dis) == 1 and dis[0].line == 135
    assert "nf_queue.c: 221" in dis[0].text and "<nf_queue+152>:      mov    (%rbx),%r12" in dis[0].text
    assert not c.corrupted
    assert c.bucket.startswith("kt1-")


# --- seed 004: CentOS 8, `bt` in a markdown code block, no sys header ------------------------------


def test_seed_004_bt_in_markdown() -> None:
    c = _one(_seed("004_c6a14afccd65d4ab.txt"), "004")
    # l.21  [exception RIP: __pv_queued_spin_lock_slowpath+410]  (410 = 0x19a)
    assert (c.ip.symbol, c.ip.offset) == ("__pv_queued_spin_lock_slowpath", 0x19A)
    # l.22  RIP: ffffffffbc73cbda  RSP: ffffb71241e378c0  RFLAGS: 00010282
    assert c.ip.address == 0xFFFFFFFFBC73CBDA
    assert c.registers["RSP"] == 0xFFFFB71241E378C0 and c.registers["RFLAGS"] == 0x10282
    # l.23  RAX: 0000000000003ffe  RBX: ffff99f4a6ffc624 ; l.26 R12: ffffffffbcaaa6d0
    assert c.registers["RAX"] == 0x3FFE and c.registers["RBX"] == 0xFFFF99F4A6FFC624
    assert c.registers["R12"] == 0xFFFFFFFFBCAAA6D0
    # l.13-20: no_context / do_page_fault / page_fault above the exception, no PANIC string: bad paging request
    assert c.kind == "paging-request"
    assert c.panic is None
    # l.29-30: the spinlock slowpath and queued_write_lock_slowpath are locking primitives; the
    # first function that is not is bpf_sk_reuseport_detach (then reuseport_detach_sock, sk_destruct)
    assert c.guilty_frame == "bpf_sk_reuseport_detach"
    assert c.title == "BUG: unable to handle kernel paging request in bpf_sk_reuseport_detach"
    # l.12  PID: 2310003  TASK: ffff99f4ee683e80  CPU: 1   COMMAND: "Verdict2"
    assert (c.task.comm, c.task.pid, c.task.cpu) == ("Verdict2", 2310003, 1)
    assert c.context == "process"
    # l.56 debuginfo path of the dis -l listing: linux-4.18.0-305.3.1.el8.x86_64 (prose l.9 says the same)
    assert c.kernel.release == "4.18.0-305.3.1.el8.x86_64"
    assert c.kernel.distro == "el8"
    assert c.arch == "x86_64"
    assert (c.source.first_line, c.source.last_line) == (12, 46)
    names = [f.symbol for f in c.frames]
    # l.13 #0 machine_kexec .. l.46 #25 entry_SYSCALL_64_after_hwframe
    assert len(names) == 26 and names[0] == "machine_kexec" and names[-1] == "entry_SYSCALL_64_after_hwframe"
    assert [f.section for f in c.frames[:8]] == ["exception"] * 8
    assert {f.section for f in c.frames[8:]} == {"task"}
    # l.33-35 nf_queue_entry_release_refs, nf_reinject, nfqnl_recv_verdict [nfnetlink_queue]
    assert names[12:15] == ["nf_queue_entry_release_refs", "nf_reinject", "nfqnl_recv_verdict"]
    assert c.frames[14].module == "nfnetlink_queue"
    # l.35 nfqnl_recv_verdict at ffffffffc095a81f
    assert c.frames[14].address == 0xFFFFFFFFC095A81F
    # the listings without a prompt (l.56-62 and l.99-110) are kept
    dis = [e for e in c.related_events if e.kind == "crash-dis"]
    assert [e.line for e in dis] == [56, 99]
    assert "<__pv_queued_spin_lock_slowpath+410>:        mov    %rbp,(%r12)" in dis[0].text
    assert not c.corrupted


# --- seed 000: CentOS 7, `crash> bt` flattened onto one line with a line-number gutter -------------


def test_seed_000_flattened_bt() -> None:
    c = _one(_seed("000_3ac917ef54f6f6d4.txt"), "000")
    # l.4 "... 40 41 crash> bt PID: 5027 TASK: ffff893cad135280 CPU: 1 COMMAND: "Verdict3" #0 [..."
    assert (c.task.comm, c.task.pid, c.task.cpu) == ("Verdict3", 5027, 1)
    assert (c.source.first_line, c.source.last_line) == (4, 4)
    # l.4 "[exception RIP: nf_ct_deliver_cached_events+45]"  (45 = 0x2d); crash prints no module here
    assert (c.ip.symbol, c.ip.offset) == ("nf_ct_deliver_cached_events", 0x2D)
    # l.4 "RIP: ffffffffc086077d RSP: ffff893c4f527810 RFLAGS: 00010246 RAX: 0000000000000000 RBX: ffff893ca41e5140"
    assert c.ip.address == 0xFFFFFFFFC086077D
    assert c.registers["RAX"] == 0 and c.registers["RBX"] == 0xFFFF893CA41E5140
    assert c.registers["RFLAGS"] == 0x10246 and c.registers["R13"] == 0xFFFF893C9491A500
    assert c.registers["ORIG_RAX"] == 0xFFFFFFFFFFFFFFFF and c.registers["SS"] == 0x18
    # the user-mode registers after #23 system_call_fastpath ("RAX: 000000000000002e ... CS: 0033") are not the crash's
    assert c.registers["CS"] == 0x10
    # l.4 frames #0 machine_kexec .. #9 page_fault, then #10 ipv4_confirm [nf_conntrack_ipv4] .. #23
    names = [f.symbol for f in c.frames]
    assert len(names) == 24
    assert names[9] == "page_fault" and names[10] == "ipv4_confirm" and names[-1] == "system_call_fastpath"
    assert c.frames[10].module == "nf_conntrack_ipv4" and c.frames[10].address == 0xFFFFFFFFC08372CE
    assert names[11:14] == ["nf_iterate", "nf_reinject", "nfqnl_recv_verdict"]
    assert c.frames[13].module == "nfnetlink_queue"
    assert [f.section for f in c.frames[:10]] == ["exception"] * 10
    assert {f.section for f in c.frames[10:]} == {"task"}
    # no PANIC string in this document's crash output: the page-fault path gives the kind
    # (the dmesg on l.2, read by the log reader, says NULL pointer dereference at 0a30)
    assert c.kind == "paging-request"
    assert c.guilty_frame == "nf_ct_deliver_cached_events"
    assert c.title == "BUG: unable to handle kernel paging request in nf_ct_deliver_cached_events"
    assert c.context == "process"
    # l.7 `mod -s` object paths: /usr/lib/debug/usr/lib/modules/3.10.0-1160.el7.x86_64/...
    assert c.kernel.release == "3.10.0-1160.el7.x86_64" and c.kernel.distro == "el7"
    # l.9 `crash> dis nf_ct_deliver_cached_events` (flattened); l.11, 17, 41, 45, 48 listings or single
    # instructions quoted without a prompt ("1 0xffffffffc086077d <nf_ct_deliver_cached_events+45>: ...")
    dis = [e for e in c.related_events if e.kind == "crash-dis"]
    assert [e.line for e in dis] == [9, 11, 17, 41, 45, 48]
    assert "0xffffffffc086077d <nf_ct_deliver_cached_events+45>: mov 0xa30(%rax),%rdx" in dis[0].text
    assert dis[0].text.splitlines()[0] == "crash> dis nf_ct_deliver_cached_events"
    assert dis[3].text.splitlines()[-1] == "0xffffffff9fc9623b <nf_reinject+347>: callq 0xffffffff9fc94da0 <nf_iterate>"


def test_seed_000_log_section_merges_with_bt() -> None:
    """Seed 000's own dmesg (l.2) placed under a `crash> log` prompt, then its bt (l.4): the log
    reader's Crash wins and gets the bt's facts. (A composition of real seed lines, no new text.)"""
    lines = _seed("000_3ac917ef54f6f6d4.txt").split("\n")
    doc = "crash> log\n" + lines[1] + "\n" + lines[3] + "\n"
    c = _one(doc)
    # seed l.2 "BUG: unable to handle kernel NULL pointer dereference at 0000000000000a30"
    assert c.kind == "null-deref" and c.fault_address == 0xA30
    assert c.title == "BUG: unable to handle kernel NULL pointer dereference in nf_ct_deliver_cached_events"
    # seed l.2 "IP: [<ffffffffc086077d>] nf_ct_deliver_cached_events+0x2d/0x110 [nf_conntrack]"
    assert (c.ip.symbol, c.ip.offset, c.ip.size, c.ip.module) == (
        "nf_ct_deliver_cached_events",
        0x2D,
        0x110,
        "nf_conntrack",
    )
    assert c.ip.address == 0xFFFFFFFFC086077D
    # seed l.2 "CPU: 1 PID: 5027 Comm: Verdict3 ... Tainted: G OE ... 3.10.0-1160.el7.x86_64 #1"
    assert (c.task.comm, c.task.pid, c.task.cpu) == ("Verdict3", 5027, 1)
    assert "O" in c.taint.flags and "E" in c.taint.flags
    assert c.kernel.release == "3.10.0-1160.el7.x86_64"
    assert c.source.format == "crash-output" and (c.source.first_line, c.source.last_line) == (2, 3)


# --- a fourth real case: crash-utility/crash PR #100 (arm64 sys header, failed bt, then full bt) ----


def test_arm64_sys_header_and_repeated_bt() -> None:
    text = (FIXTURES / "arm64_stack_overflow_pr100.txt").read_text(encoding="utf-8")
    assert looks_like_crash_output(text)
    c = _one(text, "pr100")
    # l.15 PANIC: "Kernel panic - not syncing: kernel stack overflow"
    assert c.panic == "Kernel panic - not syncing: kernel stack overflow"
    assert c.kind == "stack-guard"
    # l.16-19 PID: 1969 COMMAND: "irq/139-0-0024" TASK: ffffffcc1a230000 CPU: 0 ; bt header l.29 agrees
    assert (c.task.comm, c.task.pid, c.task.cpu) == ("irq/139-0-0024", 1969, 0)
    # l.11 RELEASE: 4.14.156+ ; l.13 MACHINE: aarch64  (unknown Mhz)
    assert c.kernel.release == "4.14.156+" and c.arch == "arm64"
    assert c.kernel.hardware == "aarch64 (unknown Mhz)"
    # l.23-24: the first bt failed ("Segmentation fault"); the second (l.29-35) has 6 frames
    assert [f.symbol for f in c.frames] == [
        "__delay",
        "__const_udelay",
        "msm_trigger_wdog_bite",
        "do_vm_restart",
        "machine_restart",
        "emergency_restart",
    ]
    assert c.frames[0].address == 0xFFFFFF8008C80774  # l.30
    # the paste stops in the restart path: no exception frame, no panic(): flagged, nothing blamed
    assert c.ip is None and c.guilty_frame is None and c.corrupted
    # l.3 KERNEL: .. l.35 #5 emergency_restart
    assert (c.source.first_line, c.source.last_line) == (3, 35)
