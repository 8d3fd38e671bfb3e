"""Which frame is to blame: generic frames to skip, and how the stack of a report is walked.

A crash's title names the first function that is *not* generic machinery: reporting, panic
and fault handling, sanitizers, locking primitives, allocators, list/string/copy helpers.
Patterns match anywhere in the name (as syzkaller's do) unless anchored with ^ or $.

The walk follows syzkaller's convention so titles match the ones kernel developers search
for: a report's stack is read in *parts* (e.g. the faulting `RIP:` line, then `Call Trace:`,
then the frames under it), each part searched forward from where the previous one stopped.
Inline frames (`func file.c:12 [inline]`) and questionable frames (`? func+0x..`) never count.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ktriage.logs.frames import normalize

GENERIC_FRAMES: tuple[str, ...] = (
    # sanitizers and reporting
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(?:read|write)_once_.*nocheck",
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "print_report",
    "print_usage_bug",
    "do_error",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "unwind_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "print_tainted",
    "^get_taint$",
    "__fortify_report",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "assertfail",
    # allocators and the page cache
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "__alloc_frozen_pages",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "^kv?free$",
    "kfree_skb",
    "xas_(?:start|load|find)",
    "find_lock_entries",
    "truncate_inode_pages_range",
    "__phys_addr",
    # debug objects
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "__might_resched",
    # lockdep and locking primitives
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(?:reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "(?:trace|lockdep)_(?:hard|soft)irq",
    "^(?:un)?lock_page",
    # atomics, bits, refcounts, trees and lists
    "atomic(?:64)?_(?:dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(?:set|clear|change|test)_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "^klist_",
    "rhashtable_lookup",
    "ida_free",
    # string and copy helpers
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    "extract_(?:user|iter)_to_sg",
    "^crc\\d+",
    "crc_itu_t",
    # MMIO accessors
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
    # exception entry (powerpc, arm64)
    "program_check_exception",
    "program_check_common",
    "do_(?:kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync(?:_handler)?",
    # teardown and dispatch helpers: the caller is the interesting one
    "del_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "finish_wait",
    "kthread_stop",
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "device_remove_file",
    "tty_unregister_device",
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    "^complete$",
    "wait_for_completion",
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "cleanup_srcu_struct",
    "drop_nlink",
    "^put_device$",
    "lock_timer_base",
    "__timer_delete_sync",
    "sk_stop_timer_sync",
    "__mod_timer",
    "fast_dput",
    "dput",
    # buffer-head helpers that WARN on their caller's contract (fs/buffer.c: mark_buffer_dirty() warns
    # when the caller dirties a buffer that is not uptodate): the caller is the one to read
    "^mark_buffer_dirty$",
)

_GENERIC = re.compile("|".join(GENERIC_FRAMES))

# Syscall wrappers differ between architectures and releases (`SyS_x`, `__x64_sys_x`,
# `__arm64_sys_x`, `__se_sys_x`, a bare `sys_x` on 32-bit ARM, `__sys_x`/`ksys_x` bodies): one
# prefix is dropped from every name, the one that leaves it shortest (syzkaller's stripFramePrefixes),
# so `__x64_sys_rmdir` is `sys_rmdir` and ARM's `sys_openat2` is `openat2`, as syzkaller titles them.
STRIP_PREFIXES = (
    "SYSC_",
    "SyS_",
    "sys_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "__riscv_",
    "__s390x_",
    "ksys_",
)

# Frames that say the stack is polluted by fault injection (a report mixed with its output).
CORRUPTED_FRAME = re.compile(r"^(?:\s*\[<?(?:0x)?[0-9a-f]+>?\])?\s*(?:__)?should_fail(?:slab)?(?:\.[a-z0-9.]+)?\+0x")

# Stalls loop over many functions: the representative frame is the one just above an entry point.
STALL_ANCHORS = re.compile(
    "|".join(
        (
            "process_one_work",
            "do_syscall_",
            "do_fast_syscall_",
            "sysenter_dispatch",
            "tracesys_phase2",
            "el0_svc_handler",
            "invoke_syscall",
            "ret_fast_syscall",
            "netif_receive_skb",
            "do_softirq",
            "call_timer_fn",
            "_run_timers",
            "run_timer_softirq",
            "hrtimer_run",
            "run_ksoftirqd",
            "smpboot_thread_fn",
            "^kthread$",
            "start_secondary",
            "cpu_startup_entry",
            "ret_from_fork",
            "vfs_write",
            "vfs_read",
            "vfs_iter_read",
            "vfs_iter_write",
            "do_iter_read",
            "do_iter_write",
            "call_read_iter",
            "call_write_iter",
            "new_sync_read",
            "new_sync_write",
            "vfs_ioctl",
            "ksys_ioctl",
            "compat_ioctl",
            "compat_sys_ioctl",
            "blkdev_driver_ioctl",
            "blkdev_ioctl",
            "do_iter_readv_writev",
            "^call_mmap",
            "mmap_region",
            "do_mmap",
            "do_dentry_open",
            "vfs_open",
            "^sock_sendmsg",
            "^sock_recvmsg",
            "^sock_release",
            "^__sock_release",
            "^setsockopt$",
            "^__sys_setsockopt$",  # the syscall body hands over to the protocol's setsockopt: that one is named
            "kernel_setsockopt",
            "sock_common_setsockopt",
            "^listen$",
            "kernel_listen",
            "sk_common_release",
            "^sock_mmap",
            "^accept$",
            "kernel_accept",
            "^sock_do_ioctl",
            "^sock_ioctl",
            "^compat_sock_ioctl",
            "^nfnetlink_rcv_msg",
            "^rtnetlink_rcv_msg",
            "^netlink_dump",
            "^(?:sys_)?(?:socketpair|connect|ioctl)",
            "__do_fault",
            "do_page_fault",
            "^page_fault$",
            "__fput",
            "task_work_run",
            "exit_to_usermode",
            "smp_call_function",
            "tasklet_action",
            "tasklet_hi_action",
        )
    )
)

# Hung tasks: the victim waits in generic code; group by the lock or wait it is stuck in.
HANG_ANCHORS = {
    "rtnl_lock": "",
    "synchronize_rcu": "synchronize_rcu",
    "synchronize_srcu": "synchronize_rcu",
    "synchronize_net": "synchronize_rcu",
    "synchronize_sched": "synchronize_rcu",
}
HANG_SKIP = (
    "sched",
    "_lock",
    "_slowlock",
    "down",
    "rwsem",
    "completion",
    "kthread",
    "wait",
    "synchronize",
    "context_switch",
    "__switch_to",
    "cancel_delayed_work",
    "rcu_barrier",
)


def strip_prefixes(name: str) -> str:
    """Drop the syscall-wrapper prefix that leaves the name shortest, so one syscall has one name
    on every architecture and release."""
    best = name
    for p in STRIP_PREFIXES:
        if name.startswith(p) and len(name) - len(p) < len(best):
            best = name[len(p) :]
    return best


def is_generic(name: str, extra: Sequence[str] = ()) -> bool:
    if len(name) <= _CACHED_NAME:
        return _generic(str(name), tuple(extra))
    return _generic.__wrapped__(name, tuple(extra))  # the same test, uncached


_CACHED_NAME = 256  # characters: longer names (bad input) are searched each time, the cache stays small


@functools.lru_cache(maxsize=8192)
def _generic(name: str, extra: tuple[str, ...]) -> bool:
    """Whether a function name is generic machinery: the same few thousand names recur in every trace of a log,
    and the search over all the generic patterns costs ~10 us a name."""
    return _GENERIC.search(name) is not None or any(re.search(p, name) for p in extra)


def first_guilty(candidates: Sequence[str], extra_skip: Sequence[str] = ()) -> str | None:
    """The first candidate function that is not generic machinery."""
    for name in candidates:
        n = strip_prefixes(normalize(name))
        if n and not is_generic(n, extra_skip):
            return n
    return None


class FrameName(str):
    """A frame's function name that remembers the module it was printed with (`[crashmod]`) and
    whether it is the faulting IP's function (the `RIP:` line) rather than a call trace entry."""

    module: str | None = None
    at_ip: bool = False

    def __new__(cls, name: str, module: str | None = None, at_ip: bool = False) -> FrameName:
        obj = super().__new__(cls, name)
        obj.module = module
        obj.at_ip = at_ip
        return obj


# Dispatchers: functions that only forward a read/write/ioctl to whatever file or attribute was
# opened (every /proc file goes through proc_reg_write, every debugfs file through full_proxy_write).
# Shared by unrelated code, they say nothing about which code looped.
STALL_DISPATCHERS = re.compile(
    r"^(?:proc_reg_|full_proxy_|kernfs_fop_|seq_read|sysfs_kf_|dev_attr_(?:store|show)$|"
    r"proc_sys_call_handler$|proc_sys_(?:read|write)$)"
)


def stall_extract(names: Sequence[str]) -> str | None:
    """For lockups and RCU stalls: the frame just above the first entry-point anchor.

    The CPU loops over several functions, so the top frame varies between reports of the
    same bug; the caller into the loop from an entry point (syscall, workqueue, timer) does not.
    That caller names the looping code only when it is the code's own entry (a syscall body, a
    work function). When it is a dispatcher (`proc_reg_write`, `full_proxy_write`,
    `kernfs_fop_write_iter`...: every /proc, debugfs or sysfs file is reached through it) the
    anchor convention would file a driver's spin loop under the VFS plumbing. Then, when the
    interrupted IP is in a function that is not generic machinery, that function is named: it is
    the code that was running, and with nothing better to group by it is the stable choice too.
    When the IP is generic (a spinlock, a sanitizer hook) the anchor convention stands, dispatcher
    or not (syzkaller corpus 491: IP in `__sanitizer_cov_trace_pc`, title `kernfs_fop_open`).
    Lab soft-lockup: IP `crashmod_spin [crashmod]`, anchor walk `proc_reg_write` -> `crashmod_spin`.
    """
    if not names:
        return None
    prev = names[0]
    for name in names:
        if STALL_ANCHORS.search(name):
            if "smp_call_function" in name:
                return "smp_call_function"
            if STALL_DISPATCHERS.search(prev) and getattr(names[0], "at_ip", False):
                return names[0]
            return prev
        prev = name
    return None


def hang_extract(names: Sequence[str]) -> str | None:
    """Hung tasks: group waits on RCU and on rtnl, else the first frame that is not a wait.

    The wait words (syzkaller's: `_lock`, `wait`, `down`, `sched`...) match anywhere in a name,
    so that core-kernel lock wrappers (`console_lock`, `tty_ldisc_lock_pair_timeout`) are passed
    over and a hang is filed under the code that takes the shared lock. They are a guess from the
    name; a frame printed with a module tag (`crashmod_hung_lock+0xc/0x18 [crashmod]`) is known
    not to be core wait machinery (mutexes, rwsems, completions and the scheduler are built into
    the kernel image), and a module's lock is its own: that frame is the waiting code the owner
    of the module has to read. syzkaller's kernels build everything in, so its titles are
    unchanged.
    """
    for name in names:
        for anchor, replacement in HANG_ANCHORS.items():
            if anchor in name:
                return replacement or name
    for name in names:
        if getattr(name, "module", None) or not any(s in name for s in HANG_SKIP):
            return str(name)
    return None


_PANIC_FUNCS = re.compile(r"^(?:v?panic|__panic|nmi_panic)$")


def panic_caller(names: Sequence[str]) -> str | None:
    """Explicit panics: the function that called panic(), whatever its name.

    `Kernel panic - not syncing: <message>` printed by panic() itself has the trace
    `dump_stack_lvl, panic, <caller>, ...`: the caller decided to panic and wrote the message the
    title quotes. The generic skip words match inside names (`crashmod_panic` holds `panic`), so
    the frame right below the last panic()/nmi_panic() frame is taken as is, unfiltered; a trace
    without such a frame falls back to the first non-generic frame.
    """
    idx = None
    for i, name in enumerate(names):
        if _PANIC_FUNCS.match(name):
            idx = i
    if idx is not None and idx + 1 < len(names):
        return names[idx + 1]
    return first_guilty(names)


# --- walking a report in parts --------------------------------------------------------------

_PC = r"\[<?(?:0x)?[0-9a-f]+>?\]"
_FN = r"\.?([a-zA-Z0-9_]+)(?:\.|\+)"
# A frame line: up to two addresses then `func+0x` (or `func.isra.0+0x`); arm's "(func) from (caller+".
FRAME_LINE = (
    re.compile(r"^\s*(?:" + _PC + r"\s*){0,2}" + _FN),
    # 3.x also prints the callee's offset and module: `(unwind_backtrace+0x0/0xf4) from`, `(mwl_tx_xmit [mwlwifi]) from`
    re.compile(
        r"^\s*"
        + _PC
        + r" \(([a-zA-Z0-9_.]+)(?:\+0x[0-9a-f]{1,8}/0x[0-9a-f]{1,8})?(?: \[[\w\-]{1,64}\])?\) from "
        + _PC
        + r" \("
        + _FN
    ),
)
# The faulting IP line of every architecture (x86 RIP/IP, ppc NIP, arm64 pc, arm "PC is at");
# a user-space IP (`RIP: 0033:0x4466`) or `(null)` ends the part without a function.
RIP_LINE = re.compile(
    r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:" + _PC + r" +){0,2}" + _FN + r"|(?:[0-9]+:)?0x[0-9a-f]+|"
    r"(?:[0-9]+:)?" + _PC + r" +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))"
)
CALL_TRACE = re.compile(r"Call (?:T|t)race:|Backtrace:")
STACK_START = re.compile(
    r"Call (?:T|t)race|Allocated:|Allocated by task \d+:|Freed:|Freed by task \d+:|"
    r"[^k] backtrace(?: \(crc [0-9a-f]*\))?:|Backtrace:|Uninit was stored to memory at|"
    r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}"
)
TRACE = None  # the part "frames of a stack listing"


def _rx(s: str) -> re.Pattern[str]:
    return re.compile(s.replace("{PC}", _PC).replace("{FUNC}", _FN))


@dataclass(frozen=True)
class StackSpec:
    """How to find the guilty frame: parts to walk, a fallback walk, and an optional extractor."""

    parts: tuple[re.Pattern[str] | None, ...]
    parts2: tuple[re.Pattern[str] | None, ...] = ()
    extractor: Callable[[Sequence[str]], str | None] | None = None
    skip: tuple[str, ...] = ()
    keep_generic: bool = False  # hand the extractor every frame, generic ones included


_WARN_IP = _rx(r"(?:" + RIP_LINE.pattern + r"|--- interrupt: [0-9]+ at {FUNC})")
_LOCK_AT = _rx(r"at: (?:{PC} +)?{FUNC}")

STACKS: dict[str, StackSpec] = {
    "ip": StackSpec((RIP_LINE, CALL_TRACE, TRACE)),
    "ip_only": StackSpec((RIP_LINE,)),
    "trace": StackSpec((CALL_TRACE, TRACE)),
    "header": StackSpec((CALL_TRACE, TRACE)),  # the header's function is tried first
    "header_trace": StackSpec((TRACE,)),
    "rust": StackSpec((CALL_TRACE, TRACE)),
    "warning": StackSpec((_WARN_IP, TRACE), (CALL_TRACE, TRACE)),
    "stall": StackSpec((RIP_LINE, CALL_TRACE, TRACE), extractor=stall_extract),
    "trace_stall": StackSpec((CALL_TRACE, TRACE), extractor=stall_extract),
    "rcu": StackSpec(
        (_rx("apic_timer_interrupt"), RIP_LINE, TRACE),
        (_rx("apic_timer_interrupt|Exception stack|el1h_64_irq"), TRACE),
        extractor=stall_extract,
        skip=("apic_timer_interrupt", "rcu"),
    ),
    "hang": StackSpec((CALL_TRACE, TRACE), extractor=hang_extract),
    "panic": StackSpec((CALL_TRACE, TRACE), extractor=panic_caller, keep_generic=True),
    "kmsan": StackSpec((TRACE, _rx("Local variable .* created at:|Uninit was created at:"), TRACE)),
    "leak": StackSpec((_rx(r"backtrace(?: \(crc [0-9a-f]*\))?:"), TRACE)),
    "bad_page": StackSpec((_rx("page last allocated"), TRACE)),
    "deadlock": StackSpec((_LOCK_AT, _LOCK_AT, TRACE)),
    "unlock": StackSpec((_rx(r"{PC} +{FUNC}"), CALL_TRACE, TRACE)),
    "lock_order": StackSpec((_rx("which became (?:.*) at:"), TRACE)),
    # SLUB debug: the corrupted object's owner, from its allocation stack (`INFO: Allocated in f+0x..`)
    "slub": StackSpec((_rx(r"(?:INFO: )?Allocated in {FUNC}"), TRACE, _rx(r"(?:INFO: )?Freed in "))),
    # the header gives an address (`stack is corrupted in: ffffffffc08184d2`): report.py finds its frame
    "address": StackSpec(()),
}


_NESTED_IP = re.compile(r"^\s*RIP: 00[0-9a-f][048c]:(?:" + _PC + r"\s*){0,2}" + _FN)
_MODULE_TAG = re.compile(r"\+0x[0-9a-f]+(?:/0x[0-9a-f]+)? \[([\w\-]+)\]")


def _frame_of(line: str) -> list[str] | None:
    for rx in FRAME_LINE:
        m = rx.match(line)
        if m:
            return [g for g in m.groups() if g]
    return None


def walk(
    lines: Sequence[str],
    spec: StackSpec,
    head: str | None,
    extra_skip: Sequence[str],
    parts: Sequence[re.Pattern[str] | None],
) -> tuple[str | None, bool]:
    """Walk `lines` by `parts`; return (frame, polluted). `head` is a function named in the header."""
    skip = tuple(extra_skip) + spec.skip
    frames: list[str] = []
    polluted = False
    base = spec.extractor or (lambda fr: fr[0] if fr else None)

    def extract(fr: Sequence[str]) -> str | None:
        got = base(fr)
        return str(got) if got is not None else None

    def add(names: Sequence[str], module: str | None = None, at_ip: bool = False) -> None:
        for n in names:
            n = strip_prefixes(normalize(n))
            if n and (spec.keep_generic or not is_generic(n, skip)):
                frames.append(FrameName(n, module, at_ip) if module or at_ip else n)

    if head:
        add([head])
    i, n = 0, len(lines)
    seen_trace = False
    p = 0
    while p < len(parts):
        part = parts[p]
        if part is TRACE:
            if seen_trace and frames:
                got = extract(frames)
                if got:
                    return got, polluted
                frames = []
            seen_trace = True
            nxt = parts[p + 1] if p + 1 < len(parts) else None
            while i < n:
                ln = lines[i]
                i += 1
                if CORRUPTED_FRAME.match(ln):
                    polluted = True
                    break
                if STACK_START.search(ln):
                    break
                if nxt is not None:
                    m = nxt.search(ln)
                    if m:
                        add([g for g in m.groups() if g])
                        p += 1
                        break
                fr = _frame_of(ln)
                if fr:
                    mod = _MODULE_TAG.search(ln)
                    add(fr, mod.group(1) if mod and len(fr) == 1 else None)
                    continue
                m = _NESTED_IP.match(ln)
                if m:
                    mod = _MODULE_TAG.search(ln)
                    add([m.group(1)], mod.group(1) if mod else None)
            p += 1
            continue
        while i < n:
            ln = lines[i]
            i += 1
            if CORRUPTED_FRAME.match(ln):
                polluted = True
                break
            m = part.search(ln)
            if m:
                mod = _MODULE_TAG.search(ln)
                add([g for g in m.groups() if g], mod.group(1) if mod else None, at_ip=part is RIP_LINE)
                break
        p += 1
    return extract(frames), polluted


def extract_frame(
    lines: Sequence[str], spec: StackSpec, head: str | None = None, extra_skip: Sequence[str] = ()
) -> tuple[str | None, bool]:
    """The guilty frame of a report (its lines, header first) by `spec`, and whether fault
    injection output polluted the stack. Falls back to `spec.parts2` when the first walk finds nothing."""
    got, polluted = walk(lines, spec, head, extra_skip, spec.parts)
    if got is None and spec.parts2:
        got, polluted2 = walk(lines, spec, head, extra_skip, spec.parts2)
        polluted = polluted or polluted2
    return got, polluted
