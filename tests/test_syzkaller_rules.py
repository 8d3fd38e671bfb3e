"""General rules of how the kernel prints, checked on excerpts of syzkaller's report corpus
(tests/fixtures/syzkaller, each file's source in its README). The expected titles are syzkaller's
own (the corpus file's TITLE: line); each rule was missing before and is named in the test.
"""

from __future__ import annotations

from pathlib import Path

from ktriage.logs import parse_log_text
from ktriage.logs.frames import normalize
from ktriage.logs.guilty import strip_prefixes

FIX = Path(__file__).resolve().parent / "fixtures" / "syzkaller"


def first(name: str):
    crashes = parse_log_text((FIX / name).read_text(encoding="utf-8", errors="replace"))
    assert crashes, f"no crash found in {name}"
    return crashes[0]


def test_bare_sys_prefix_of_32bit_arm_is_dropped() -> None:
    """32-bit ARM calls the syscall body `sys_openat2` (no `__arm_` wrapper): the name is `openat2`."""
    c = first("arm-rcu-stall-sys-openat2.log")
    assert c.title == "INFO: rcu detected stall in openat2"
    assert c.guilty_frame == "openat2"


def test_one_wrapper_prefix_is_dropped_the_one_that_leaves_the_shortest_name() -> None:
    # x86's wrapper keeps `sys_` (syzkaller corpus: `BUG: soft lockup in sys_rmdir` from `__x64_sys_rmdir`)
    assert strip_prefixes("__x64_sys_rmdir") == "sys_rmdir"
    assert strip_prefixes("__se_sys_memfd_secret") == "memfd_secret"
    assert strip_prefixes("SyS_ioctl") == "ioctl"
    assert strip_prefixes("__sys_sendmsg") == "sendmsg"
    assert strip_prefixes("ksys_write") == "write"
    assert strip_prefixes("sysfs_kf_write") == "sysfs_kf_write"  # a prefix of words, not of a name


def test_warning_in_mark_buffer_dirty_names_its_caller() -> None:
    """mark_buffer_dirty() WARNs when its caller dirties a buffer that is not uptodate: the caller is guilty."""
    c = first("warning-mark-buffer-dirty.log")
    assert c.kind == "warning"
    assert c.title == "WARNING in bfs_get_block"
    assert c.guilty_frame == "bfs_get_block"


def test_spinlock_debug_report_is_a_locking_bug_not_a_bug_on() -> None:
    c = first("spinlock-bad-magic.log")
    assert c.kind == "lockdep"
    assert c.title == "BUG: spinlock bad magic in tcp_nuke_addr"


def test_a_stack_printed_by_another_message_inside_the_report_is_not_the_reports() -> None:
    """`FAULT_FLAG_ALLOW_RETRY missing` prints its own stack right after the lockdep header; the console
    lines carry no caller id, so that stack (ending in entry_SYSCALL_64_fastpath) cannot be told from the
    report's: the report is corrupted and names no function, rather than the wrong one."""
    c = first("unlock-balance-interleaved.log")
    assert c.title == "BUG: bad unlock balance in corrupted"
    assert c.guilty_frame is None
    assert c.corrupted and "interleaved" in (c.corrupted_reason or "")


def test_rust_frames_are_demangled_and_the_panic_machinery_skipped() -> None:
    """Kernel Rust code is built with v0 symbol mangling: the guilty frame is the demangled path of the
    first frame below rust_begin_unwind and core::panicking (both are the panic's machinery)."""
    c = first("rust-panic-sub-overflow.log")
    assert c.guilty_frame == "<rust_binder::process::Process>::update_ref"
    assert c.title == "attempt to subtract with overflow in <rust_binder::process::Process>::update_ref"
    # the frames keep the symbol as printed (for addr2line / a debugger)
    assert any(f.symbol and f.symbol.startswith("_RNvMs3_") for f in c.frames)


def test_a_name_that_is_not_a_rust_v0_symbol_is_left_as_printed() -> None:
    assert normalize("_RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind") == "__rustc::rust_begin_unwind"
    assert normalize("_RNvXbad") == "_RNvXbad"  # starts like one, does not decode
    assert normalize("_Raw_spin_lock") == "_Raw_spin_lock"


def test_an_rcu_stall_whose_only_trace_is_all_questionable_names_no_function() -> None:
    """rcu_tasks prints the holdout task's stack from another CPU: every frame is `?`, topped by stale
    scheduler addresses. That is no evidence of where the task loops: no guilty frame, title `corrupted`."""
    c = first("rcu-tasks-stall-all-questionable.log")
    assert c.kind == "rcu-stall"
    assert c.title == "INFO: rcu detected stall in corrupted"
    assert c.guilty_frame is None


def test_an_oops_printed_into_a_reports_call_trace_is_another_report() -> None:
    """CPU 1's WARNING gets as far as `Call Trace:` when CPU 0's general protection fault is printed into
    it. The GPF is its own crash; its RIP (native_write_cr4) is not where the WARNING fired."""
    crashes = parse_log_text((FIX / "warning-cut-by-another-cpus-gpf.log").read_text())
    assert [(c.kind, c.task.pid) for c in crashes] == [("warning", 18244), ("gpf", 18241)]
    warn, gpf = crashes
    assert warn.title == "WARNING in corrupted" and warn.corrupted
    assert warn.guilty_frame != "native_write_cr4"
    assert gpf.title == "general protection fault in native_write_cr4"


def test_a_questionable_frame_is_no_anchor_for_a_stall_walk() -> None:
    """An RCU stall with only blocked tasks' stacks: the walk looks for the timer interrupt that sampled the
    stalled CPU, and the only one printed is a stale `? asm_sysvec_apic_timer_interrupt+0x1f/0x30`. That is
    no interrupt entry: the frames after it (syscall_exit_to_user_mode) do not name the stall."""
    c = first("rcu-stall-blocked-tasks.log")
    assert c.title == "INFO: rcu detected stall in corrupted"
    assert c.guilty_frame is None


def test_a_report_interleaved_with_a_vmalloc_failure_is_read_up_to_it() -> None:
    """Another task's `vmalloc: allocation failure` (warn_alloc, with its own stack) is printed into a
    suspicious-RCU-usage report on the fourth line, before the file:line the title needs: no frame of the
    warn_alloc stack (xt_alloc_entry_offsets) is taken as the RCU report's, and the title is the header."""
    c = first("rcu-usage-interleaved-vmalloc-failure.log")
    assert c.title == "WARNING: suspicious RCU usage"
    assert c.guilty_frame is None
    assert c.corrupted


def test_a_header_after_the_reports_task_line_starts_another_report() -> None:
    """CPU 0's double fault prints its `CPU: 0 PID: 0 Comm: swapper/0` line, then a paging request's header
    comes: that is a second report, not the double fault's second header line, and the `RIP:` printed
    after it (__udp6_lib_lookup) is not the double fault's."""
    crashes = parse_log_text((FIX / "double-fault-and-paging-request-two-cpus.log").read_text())
    assert [c.kind for c in crashes[:2]] == ["double-fault", "paging-request"]
    df = crashes[0]
    assert df.title == "PANIC: double fault in corrupted" and df.guilty_frame is None
    assert (df.task.comm, df.task.cpu) == ("swapper/0", 0)
