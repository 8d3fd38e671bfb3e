"""The kernel's crash report formats, as data.

Each entry says: which line starts a report (`header`, searched in the message text), what
kind of crash it is, how the title is written (syzkaller's conventions, which kernel
developers search by), and where the guilty function comes from:

`stack` names a walk in guilty.STACKS (syzkaller's conventions):

  "ip"            the faulting IP line (RIP/IP/NIP/pc/PC is at), then `Call Trace:` and its frames
  "ip_only"       the faulting IP line alone (double fault, divide error, invalid opcode)
  "trace"         the frames under `Call Trace:`
  "warning"       the IP line (or ppc `--- interrupt: at`) and the frames after it; else the trace
  "header"        a function named in the header line (`{h_func}`), then the trace
  "stall"         lockups/stalls: the frame above an entry-point anchor (see guilty.py)
  "hang"          hung tasks: the lock/wait anchor or the first frame that is not a wait
  "panic"         explicit panic(): the frame below the last panic() frame (panic()'s caller)
  "kmsan", "leak", "bad_page", "deadlock", "unlock", "lock_order", "rcu": report-specific walks
  "none"          the title needs no function

Title templates: `{func}` is the guilty function, `{h1}`.. header regex groups, `{r1}`..
groups of `report` (a regex over the whole report text). Order matters: the first entry
whose header matches and whose `report` (when given) matches wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ktriage import linear

FUNC = r"([a-zA-Z0-9_.$]+)"
SRC = r"([a-zA-Z0-9_\-./+]+\.(?:c|h|rs|S)):\d+"  # build paths may hold "+" (target-mipsel_1004kc+dsp)


@dataclass(frozen=True)
class Format:
    header: linear.Pattern  # linear in the line (ktriage.linear)
    kind: str
    title: str
    stack: str = "trace"
    report: linear.Pattern | None = None
    skip: tuple[str, ...] = ()
    corrupted: bool = False
    starts_report: bool = True  # False: may appear inside another report (panic after oops...)
    no_stack: bool = False  # the title is complete without a call trace
    frame_from_title: bool = False  # the guilty function is the first one the title names
    fallback: bool = False  # catch-all: an oops keyword no other entry knows; the line is the title


def F(header: str, kind: str, title: str, **kw: object) -> Format:
    h = header.replace("{FUNC}", FUNC).replace("{SRC}", SRC)
    rep = kw.pop("report", None)
    r = linear.compile(rep.replace("{FUNC}", FUNC).replace("{SRC}", SRC)) if isinstance(rep, str) else None
    return Format(linear.compile(h), kind, title, report=r, **kw)  # type: ignore[arg-type]


_AT = r"(?:.*\n)+?.*?at: (?:\[<?[0-9a-f]+>?\] +)?{FUNC}[.+]"
_PCF = r"(?:.*\n)+?.*?\[<?[0-9a-f]+>?\] +{FUNC}[.+]"
_SAN = ("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_")  # KASAN_HW_TAGS trap frames
_MALLOC = ("kmalloc", "krealloc", "slab", "kmem")

FORMATS: tuple[Format, ...] = (
    # --- memory-safety tools -------------------------------------------------------------
    F(
        r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {FUNC}",
        "kasan",
        "KASAN: invalid-free in {func}",
        stack="header",
        skip=("slab_", "kfree", "vunmap", "vfree"),
    ),
    F(
        r"BUG: KASAN: ([a-z\-]+) in {FUNC}",
        "kasan",
        "KASAN: {h1} {r1} in {func}",
        stack="header",
        report=r"(Read|Write) (?:of size|at addr) [0-9a-f]+",
        skip=_SAN,
    ),
    F(r"BUG: KASAN: ([a-z\-]+) on address", "kasan", "KASAN: {h1} {r1}", stack="none", report=r"(Read|Write) of size"),
    F(r"BUG: KASAN: (.*)", "kasan", "KASAN: {h1}", stack="none", corrupted=True),
    F(
        r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {FUNC}",
        "kfence",
        "KFENCE: {h1} {h2} in {func}",
        stack="header_trace",
    ),
    F(
        r"BUG: KFENCE: invalid free in {FUNC}",
        "kfence",
        "KFENCE: invalid free in {func}",
        stack="header_trace",
        no_stack=True,
    ),
    F(r"BUG: KFENCE: invalid (read|write) in {FUNC}", "kfence", "KFENCE: invalid {h1} in {func}", stack="header_trace"),
    F(
        r"BUG: KFENCE: memory corruption in {FUNC}",
        "kfence",
        "KFENCE: memory corruption in {func}",
        stack="header_trace",
        no_stack=True,
    ),
    F(
        r"BUG: KMSAN: kernel-usb-infoleak in {FUNC}",
        "kmsan",
        "KMSAN: kernel-usb-infoleak in {func}",
        stack="kmsan",
        no_stack=True,
        skip=(
            "alloc_skb",
            "usb_submit_urb",
            "usb_start_wait_urb",
            "usb_bulk_msg",
            "usb_interrupt_msg",
            "usb_control_msg",
        ),
    ),
    F(
        r"BUG: KMSAN: ([a-z\-]+) in {FUNC}",
        "kmsan",
        "KMSAN: {h1} in {func}",
        stack="kmsan",
        no_stack=True,
        skip=("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", "^(?:crypto|cipher|drbg|rng)_"),
    ),
    F(r"BUG: KCSAN: (.*)", "kcsan", "KCSAN: {h1}", stack="none", no_stack=True, frame_from_title=True),
    # --- page faults -------------------------------------------------------------------------
    F(
        r"BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|"
        r"Unable to handle kernel data access)",
        "paging-request",
        "BUG: unable to handle kernel paging request in {func}",
        stack="ip",
    ),
    F(
        r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|"
        r"Kernel NULL pointer dereference)",
        "null-deref",
        "BUG: unable to handle kernel NULL pointer dereference in {func}",
        stack="ip",
    ),
    # the second half of the header is a separate printk and can be lost
    F(
        r"BUG: (?:unable to handle kernel|Unable to handle kernel)",
        "paging-request",
        "BUG: unable to handle kernel",
        stack="none",
        corrupted=True,
    ),
    F(
        r"Unable to handle kernel (NULL pointer dereference)",
        "null-deref",
        "BUG: unable to handle kernel {h1} in {func}",
        stack="ip",
    ),
    F(
        r"Unable to handle kernel (access to user memory)",
        "paging-request",
        "BUG: unable to handle kernel {h1} in {func}",
        stack="ip",
    ),
    F(
        r"Unable to handle kernel (paging request)",
        "paging-request",
        "BUG: unable to handle kernel {h1} in {func}",
        stack="ip",
    ),
    F(
        r"Unable to handle kernel (?:execute from non-executable memory|write to read-only memory|"
        r"pointer dereference in virtual kernel address space)",
        "paging-request",
        "BUG: unable to handle kernel paging request in {func}",
        stack="ip",
    ),
    F(r"general protection fault.*:", "gpf", "general protection fault in {func}", stack="ip"),
    F(r"stack segment: ", "gpf", "stack segment fault in {func}", stack="ip"),
    F(r"divide(?: |_)error: ", "divide-error", "divide error in {func}", stack="ip_only"),
    F(r"PANIC: double fault", "double-fault", "PANIC: double fault in {func}", stack="ip_only", starts_report=False),
    F(r"Unhandled fault:", "paging-request", "Unhandled fault in {func}", stack="ip"),
    F(r"Alignment trap:", "paging-request", "Alignment trap in {func}", stack="ip"),
    # --- assertions ----------------------------------------------------------------------------
    F(
        r"kernel BUG at mm/usercopy\.c",
        "usercopy",
        "BUG: bad usercopy in {func}",
        stack="trace",
        skip=("usercopy", "__check"),
    ),
    F(r"kernel BUG at lib/list_debug\.c", "list-corruption", "BUG: corrupted list in {func}", stack="trace"),
    F(r"kernel BUG at ", "bug", "kernel BUG in {func}", stack="ip", skip=("^skb_",)),
    F(r"Kernel BUG (.*)", "bug", "kernel BUG {h1}", stack="none", no_stack=True),
    F(r"invalid opcode: ", "invalid-opcode", "invalid opcode in {func}", stack="ip_only", starts_report=False),
    # 32-bit ARM traps: BUG() is an undefined instruction (`Oops - BUG`), other undefined instructions too
    F(r"Internal error: Oops - BUG: ", "bug", "kernel BUG in {func}", stack="ip", starts_report=False),
    F(
        r"Internal error: Oops - undefined instruction: ",
        "invalid-opcode",
        "invalid opcode in {func}",
        stack="ip",
        starts_report=False,
    ),
    F(r"Internal error: ", "paging-request", "Internal error in {func}", stack="ip", starts_report=False),
    F(r"BUG: soft lockup", "soft-lockup", "BUG: soft lockup in {func}", stack="stall"),
    F(
        r"(?:NMI watchdog|watchdog): Watchdog detected hard LOCKUP",
        "hard-lockup",
        "hard lockup in {func}",
        stack="stall",
    ),
    F(
        r"BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|"
        r"wrong owner|wrong CPU|trylock failure on UP)",
        "lockdep",  # CONFIG_DEBUG_SPINLOCK's checks (kernel/locking/spinlock_debug.c): a locking bug, no BUG_ON
        "BUG: {h1} {h2} in {func}",
        skip=("spin_", "_lock", "_unlock"),
    ),
    F(
        r"BUG: .*still has locks held!",
        "lockdep",
        "BUG: still has locks held in {r1}",
        stack="none",
        report=r"still has locks held!" + _PCF,
    ),
    F(r"BUG: scheduling while atomic", "atomic-sleep", "BUG: scheduling while atomic in {func}", skip=("schedule",)),
    F(
        r"BUG: lock held when returning to user space",
        "lockdep",
        "BUG: lock held when returning to user space in {r1}",
        stack="none",
        no_stack=True,
        report=r"leaving the kernel with locks still held" + _AT,
    ),
    F(r"BUG: bad unlock balance detected!", "lockdep", "BUG: bad unlock balance in {func}", stack="unlock"),
    F(
        r"BUG: held lock freed!",
        "lockdep",
        "BUG: held lock freed in {r1}",
        stack="none",
        report=r"held lock freed!" + _PCF,
    ),
    F(r"BUG: Bad rss-counter state", "bad-page", "BUG: Bad rss-counter state", stack="none", no_stack=True),
    F(
        r"BUG: non-zero (nr_ptes|nr_pmds) on freeing mm",
        "bad-page",
        "BUG: non-zero {h1} on freeing mm",
        stack="none",
        no_stack=True,
    ),
    # the filesystem type and block device vary between runs of one bug: leave them out
    F(
        r"BUG: Dentry .* still in use",
        "bug",
        "BUG: Dentry still in use in {r1}",
        stack="none",
        report=r"still in use \(\d+\) \[(unmount) of ",
    ),
    F(
        r"BUG: Bad page (state|cache)",
        "bad-page",
        "BUG: Bad page {h1} in {func}",
        stack="bad_page",
        skip=(
            "(?:free|put|get|update|release)_page",
            "free_unref",
            "^_*folio",
            "truncate_inode_pages",
            "page_frag_free",
            "alloc",
            "vmap",
            "page_owner",
        ),
    ),
    F(r"BUG: Bad page map", "bad-page", "BUG: Bad page map", stack="none"),
    F(r"BUG: workqueue lockup", "soft-lockup", "BUG: workqueue lockup", stack="none", no_stack=True),
    F(
        r"BUG: sleeping function called from invalid context at (.*)",
        "atomic-sleep",
        "BUG: sleeping function called from invalid context in {func}",
    ),
    F(
        r"BUG: using ([a-z_]+)\(\) in preemptible",
        "lockdep",
        "BUG: using {h1}() in preemptible code in {func}",
        skip=("dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"),
    ),
    F(
        r"BUG: workqueue leaked lock or atomic",
        "lockdep",
        "BUG: workqueue leaked lock or atomic in {r1}",
        stack="none",
        no_stack=True,
        report=r"last function: ([a-zA-Z0-9_]+)\n",
    ),
    F(
        r"BUG: memory leak",
        "memory-leak",
        "memory leak in {func}",
        stack="leak",
        skip=(
            "kmemleak",
            "mmap",
            "kmem",
            "slab",
            "alloc",
            "create_object",
            "idr_get",
            "list_lru_init",
            "kasprintf",
            "kvasprintf",
            "pcpu_create",
            "strdup",
            "strndup",
            "memdup",
        ),
    ),
    F(r"BUG: .*stack guard page was hit at", "stack-guard", "BUG: stack guard page was hit in {func}", stack="stall"),
    F(r"BUG: Invalid wait context", "lockdep", "WARNING: locking bug in {func}", skip=("lock_sock", "release_sock")),
    F(r"BUG: (MAX_[A-Z_]+ too low!)", "lockdep", "BUG: {h1}", stack="none", no_stack=True),
    F(
        r"BUG: looking up invalid subclass",
        "lockdep",
        "BUG: looking up invalid subclass in {func}",
        skip=("lock", "look_up"),
    ),
    F(
        r"BUG: ([a-z0-9_\-]+) \((?:Not tainted|Tainted: [^)]*)\): (.*)",
        "slab-corruption",
        "SLUB: {h2} in {h1}",
        stack="none",
    ),
    # SLUB debug (slub_debug=FZPU): `BUG kmalloc-64 (Not tainted): Poison overwritten`, 3.x without the taint;
    # one report with the object's allocation and free stacks (`INFO: Allocated in ...`)
    F(
        r"^BUG ([\w\-.:]{1,64})(?: \((?:Not tainted|Tainted: [^)]{0,40})\))?: ((?:kmalloc |Left |Object |Alignment )?"
        r"(?:Redzone|Poison|Padding|Freepointer|Freechain|padding)[ \w]{0,40}|Object already free|Invalid object pointer"
        r"[ \w]{0,40}|Wrong object count[ \w]{0,40}|Objects remaining[ \w]{0,60})",
        "slab-corruption",
        "SLUB: {h2} in {h1}",
        stack="slub",
        no_stack=True,
        skip=("alloc", "slab", "kmem", "malloc", "krealloc", "kfree", "memdup", "strdup"),
    ),
    F(r"BUG kmalloc-.*: Object already free", "slab-corruption", "BUG: Object already free", stack="none"),
    F(r"^BUG:\s*$", "bug", "BUG: corrupted", stack="none", corrupted=True),
    # --- usercopy / refcount / stack protector ----------------------------------------------
    F(
        r"usercopy: Kernel memory (?:exposure|overwrite) attempt detected",
        "usercopy",
        "BUG: bad usercopy in {func}",
        skip=("usercopy", "__check", "check_"),
        starts_report=False,
    ),
    # panic("stack-protector: ...%pB"): some kernels print the raw address; the trace names it
    F(
        r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: (?:0x)?([0-9a-f]{8,16})\s*$",
        "stack-protector",
        "kernel panic: stack is corrupted in {func}",
        stack="address",
        no_stack=True,
    ),
    F(
        r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {FUNC}",
        "stack-protector",
        "kernel panic: stack is corrupted in {h1}",
        stack="none",
        no_stack=True,
    ),
    F(
        r"Kernel panic - not syncing: stack-protector:",
        "stack-protector",
        "kernel panic: stack is corrupted in {func}",
        skip=("stack_chk",),
    ),
    F(
        r"Kernel panic - not syncing: corrupted stack end",
        "stack-guard",
        "kernel panic: corrupted stack end in {func}",
        stack="trace_stall",
        skip=("schedule", "retint_kernel"),
    ),
    F(
        r"Kernel panic - not syncing: kernel stack overflow",
        "stack-guard",
        "kernel stack overflow in {func}",
        stack="trace_stall",
        skip=("bad_stack",),
    ),
    # --- warnings ------------------------------------------------------------------------------
    F(
        r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)",
        "warning",
        "WARNING: ODEBUG bug in {func}",
        stack="warning",
        skip=(
            "debug_",
            "rcu",
            "hrtimer_",
            "timer_",
            "work_",
            "percpu_",
            "vunmap",
            "vfree",
            "__free_",
            "debug_check",
            "kobject_",
        ),
    ),
    F(
        r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)",
        "usercopy",
        "WARNING: bad usercopy in {func}",
        stack="warning",
        skip=("usercopy", "__check"),
    ),
    F(
        r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)",
        "warning",
        "WARNING: kobject bug in {func}",
        stack="warning",
        skip=("kobject_",),
    ),
    F(
        r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)",
        "warning",
        "WARNING: proc registration bug in {func}",
        stack="warning",
        skip=("proc_",),
    ),
    F(
        r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)",
        "refcount",
        "WARNING: refcount bug in {func}",
        stack="warning",
        skip=("refcount", "kobject_"),
    ),
    F(
        r"WARNING: .*kernel/locking/lockdep\.c.*lock_",
        "lockdep",
        "WARNING: locking bug in {func}",
        stack="warning",
        skip=("lock_sock", "release_sock"),
    ),
    F(
        r"WARNING: .*still has locks held!",
        "lockdep",
        "WARNING: still has locks held in {r1}",
        stack="none",
        report=r"still has locks held!(?:.*\n)+?.*at: {FUNC}[.+]",
    ),
    F(
        r"WARNING: Nested lock was not taken",
        "lockdep",
        "WARNING: nested lock was not taken in {r1}",
        stack="none",
        report=r"Nested lock was not taken" + _AT,  # the lock's `at: evict+0x90/0x334`, as syzkaller reads it
    ),
    F(
        r"WARNING: Nested lock was not taken",
        "lockdep",
        "WARNING: nested lock was not taken in {func}",
        stack="warning",
    ),
    F(
        r"WARNING: lock held when returning to user space",
        "lockdep",
        "WARNING: lock held when returning to user space in {r1}",
        stack="none",
        no_stack=True,
        report=r"leaving the kernel with locks still held" + _AT,
    ),
    F(r"WARNING: .*mm/.*\.c.* k?.?malloc", "warning", "WARNING: kmalloc bug in {func}", stack="warning", skip=_MALLOC),
    F(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", "warning", "WARNING: zero-size vmalloc in {func}", stack="warning"),
    F(
        r"WARNING: .* usb_submit_urb",
        "warning",
        "WARNING in {func}/usb_submit_urb",
        stack="warning",
        skip=("usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"),
    ),
    F(r"WARNING: {SRC} at 0x\d+, CPU#\d+", "warning", "WARNING in {func}", stack="warning"),
    F(r"WARNING: .* at {SRC} {FUNC}", "warning", "WARNING in {func}", stack="warning"),
    # the same line cut after file:line (quoted in a commit message): the RIP line names the function
    F(r"WARNING: CPU: \d+ PID: \d+ at {SRC}\s*$", "warning", "WARNING in {func}", stack="warning"),
    F(r"WARNING: {SRC} at {FUNC}", "warning", "WARNING in {func}", stack="warning"),
    F(r"WARNING: \[.*\] {SRC} at {FUNC}", "warning", "WARNING in {func}", stack="warning"),
    F(
        r"WARNING: possible circular locking dependency detected",
        "lockdep",
        "possible deadlock in {func}",
        stack="deadlock",
        report=r"is trying to acquire lock",
        skip=("process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue"),
    ),
    F(
        r"WARNING: possible irq lock inversion dependency detected",
        "lockdep",
        "possible deadlock in {r1}",
        stack="none",
        report=r"just changed the state of lock" + _AT,
    ),
    F(
        r"WARNING: .*-safe -> .*-unsafe lock order detected",
        "lockdep",
        "possible deadlock in {func}",
        stack="lock_order",
    ),
    F(
        r"WARNING: possible recursive locking detected",
        "lockdep",
        "possible deadlock in {r1}",
        stack="none",
        report=r"is trying to acquire lock" + _AT,
    ),
    F(
        r"WARNING: inconsistent lock state",
        "lockdep",
        "inconsistent lock state in {func}",
        stack="trace",
        report=r"takes" + _AT,
    ),
    F(
        r"WARNING: suspicious RCU usage",
        "lockdep",
        "WARNING: suspicious RCU usage in {func}",
        report=r"{SRC}",
        skip=("rcu", "kmem", "slab"),
    ),
    F(
        r"WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
        "warning",
        "WARNING: kernel stack regs has bad '{h1}' value",
        stack="none",
        no_stack=True,
    ),
    F(
        r"WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
        "warning",
        "WARNING: kernel stack frame pointer has bad value",
        stack="none",
        no_stack=True,
    ),
    F(r"WARNING: bad unlock balance detected!", "lockdep", "WARNING: bad unlock balance in {func}", stack="unlock"),
    F(
        r"WARNING: held lock freed!",
        "lockdep",
        "WARNING: held lock freed in {r1}",
        stack="none",
        report=r"held lock freed!(?:.*\n)+?.*at:(?: \[<?[0-9a-f]+>?\])? +{FUNC}[.+]",
    ),
    F(r"^WARNING:\s*$", "warning", "WARNING: corrupted", stack="none", corrupted=True),
    # pre-3.x kernels: "WARNING: at net/core/dev.c:1915 skb_gso_segment+0x1a5/0x2b0()", also without the
    # offset ("init_amd()") and with the module ("mesh_plink_frame_tx+0x43e/0x450 [mac80211]()")
    F(
        r"WARNING: at {SRC} {FUNC}(?:\+0x[0-9a-f]{1,8}/0x[0-9a-f]{1,8})?(?: \[[\w\-]{1,64}\])?\(\)",
        "warning",
        "WARNING in {func}",
        stack="header",
    ),
    # --- INFO ------------------------------------------------------------------------------------
    F(
        r"INFO: possible circular locking dependency detected",
        "lockdep",
        "possible deadlock in {r1}",
        stack="none",
        report=r"is trying to acquire lock" + _AT,
    ),
    F(
        r"INFO: possible irq lock inversion dependency detected",
        "lockdep",
        "possible deadlock in {r1}",
        stack="none",
        report=r"just changed the state of lock" + _AT,
    ),
    F(
        r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
        "lockdep",
        "possible deadlock in {r1}",
        stack="none",
        report=r"is trying to acquire" + _AT,
    ),
    F(
        r"INFO: possible recursive locking detected",
        "lockdep",
        "possible deadlock in {r1}",
        stack="none",
        report=r"is trying to acquire lock" + _AT,
    ),
    F(
        r"INFO: inconsistent lock state",
        "lockdep",
        "inconsistent lock state in {r1}",
        stack="none",
        report=r"takes" + _AT,
    ),
    F(
        r"(?:INFO: )?rcu_(?:preempt|sched|bh|tasks(?:_trace)?) (?:self-)?detected(?: expedited)? stall",
        "rcu-stall",
        "INFO: rcu detected stall in {func}",
        stack="rcu",
    ),
    F(
        r"INFO: trying to register non-static key",
        "lockdep",
        "INFO: trying to register non-static key in {func}",
        skip=("stack", "lock", "IRQ"),
    ),
    F(
        r"INFO: suspicious RCU usage",
        "lockdep",
        "INFO: suspicious RCU usage in {func}",
        report=r"{SRC}",
        skip=("rcu", "kmem", "slab"),
    ),
    F(
        r"INFO: task .* blocked (?:in I/O wait )?for more than \d+ seconds",
        "hung-task",
        "INFO: task hung in {func}",
        stack="hang",
    ),
    F(
        r"INFO: task .* can't die for more than .* seconds",
        "hung-task",
        "INFO: task can't die in {func}",
        skip=("schedule",),
    ),
    # what is left of an old-style KASAN report
    F(
        r"INFO: (Freed|Allocated) in (.*)",
        "kasan",
        "INFO: {h1} in {h2}",
        stack="none",
        corrupted=True,
        starts_report=False,
    ),
    F(r"^INFO:\s*$", "unknown", "INFO: corrupted", stack="none", corrupted=True),
    # --- panics ----------------------------------------------------------------------------------
    F(
        r"Kernel panic - not syncing: Attempted to kill init!",
        "panic",
        "kernel panic: Attempted to kill init!",
        stack="none",
        no_stack=True,
    ),
    F(
        r"Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
        "panic",
        "kernel panic: Couldn't open N_TTY ldisc",
        stack="none",
        no_stack=True,
    ),
    # printed after the real report: captured alone, the report's header was lost
    # (arm64's die() words it `Oops: Fatal exception` / `Oops - BUG: Fatal exception`)
    F(
        r"Kernel panic - not syncing: (?:Oops(?: - BUG)?: )?Fatal exception",
        "panic",
        "kernel panic: Fatal exception",
        stack="none",
        corrupted=True,
        starts_report=False,
    ),
    F(
        r"Kernel panic - not syncing: panic_on_warn set",
        "panic",
        "kernel panic: panic_on_warn set",
        stack="none",
        corrupted=True,
        starts_report=False,
    ),
    F(
        r"Kernel panic - not syncing: hung_task: blocked tasks",
        "hung-task",
        "kernel panic: hung_task: blocked tasks",
        stack="none",
        corrupted=True,
        starts_report=False,
    ),
    # hardlockup_panic / nmi_watchdog=panic: the panic line is the report's header
    F(
        r"Kernel panic - not syncing: (?:Watchdog detected hard LOCKUP on cpu \d+|Hard LOCKUP)",
        "hard-lockup",
        "hard lockup in {func}",
        stack="stall",
        no_stack=True,
    ),
    F(r"^Watchdog CPU:\d+ Hard LOCKUP", "hard-lockup", "hard lockup in {func}", stack="stall", no_stack=True),
    F(r"Kernel panic - not syncing: Out of memory", "oom", "kernel panic: Out of memory", stack="none", no_stack=True),
    F(
        r"Kernel panic - not syncing: (?:Fatal )?[Mm]achine check",
        "mce",
        "kernel panic: machine check",
        stack="none",
        no_stack=True,
    ),
    # the title is the message; the guilty frame is panic()'s caller, from the trace when there is one
    F(
        r"Kernel panic - not syncing: (.*?)\s*$",
        "panic",
        "kernel panic: {h1}",
        stack="panic",
        no_stack=True,
        starts_report=False,
    ),
    F(r"Kernel panic - not syncing", "panic", "kernel panic", stack="none", no_stack=True, starts_report=False),
    F(
        r"rust_kernel: panicked",
        "bug",
        "{r1} in {func}",
        report=r"rust_kernel: panicked at [^\n]*?\n(.+?)\n",
        stack="rust",
        skip=(r"__rustc::rust_begin_unwind",),
    ),
    F(
        r"trusty: panic",
        "panic",
        "trusty: ASSERT FAILED: {r1}",
        stack="none",
        no_stack=True,
        # the caller's `(...)` may hold another line's timestamp, which splits the header line in two
        report=r"trusty: panic \([^)]{0,200}\):(?: DEBUG)? ASSERT FAILED at \([^)\n]{0,200}\): (.+)",
    ),
    F(r"trusty: panic.* ASSERT FAILED.*: *(.*)", "panic", "trusty: ASSERT FAILED: {h1}", stack="none", corrupted=True),
    F(
        r"trusty: panic",
        "panic",
        "trusty: panic: {r1}",
        stack="none",
        no_stack=True,
        report=r"trusty: panic \(.*?\): (.+)",
    ),
    F(r"UBSAN: Undefined behaviour in", "ubsan", "UBSAN: undefined-behaviour in {func}", skip=("ubsan", "overflow")),
    F(r"UBSAN: (.*?) in", "ubsan", "UBSAN: {h1} in {func}", skip=("ubsan", "overflow")),
    F(
        r"unregister_netdevice: waiting for (?:.*) to become free",
        "refcount",
        "unregister_netdevice: waiting for DEV to become free",
        stack="none",
        no_stack=True,
        starts_report=False,
    ),
    F(
        r"VFS: Busy inodes after unmount",
        "bug",
        "VFS: Busy inodes after unmount (use-after-free)",
        stack="none",
        no_stack=True,
    ),
    F(
        r"VFS: Close: file count is 0",
        "bug",
        "VFS: Close: file count is zero (use-after-free)",
        stack="none",
        no_stack=True,
    ),
    # --- production-only forms (not in syzkaller's table) ------------------------------------
    # warn_alloc(): `swapper/21: page allocation failure: order:0, mode:0x20`; 2.6.2x `failure. order:3`
    F(
        r"^(\S{1,32}): page allocation failure[:.] {1,2}order:(\d{1,2})",
        "page-alloc-failure",
        "page allocation failure: order:{h2} in {func}",
        stack="trace",
        skip=(
            "alloc_pages",
            "^__?alloc",
            "_alloc$",
            "^_*kmem_",
            "kmalloc",
            "slab",
            "page_frag",
            "get_free_page",
            "^__?(?:netdev|napi)_alloc_skb",
            "compact",
        ),
    ),
    F(r"Oops: (?:Machine check|System Reset), sig: \d+", "mce", "machine check exception", stack="none", no_stack=True),
    F(
        r"(?:list_add|list_del|list_replace|list_move|hlist_add|hlist_del)\w* corruption",
        "list-corruption",
        "BUG: corrupted list in {func}",
        stack="ip",
        skip=(r"^_*h?list_",),
        starts_report=False,
    ),
    F(
        r"refcount_t: (?:underflow|overflow|saturated|addition on 0|decrement hit 0)",
        "refcount",
        "WARNING: refcount bug in {func}",
        stack="warning",
        skip=("refcount",),
        starts_report=False,
    ),
    F(
        r"\[Hardware Error\]: (?:CPU \d+: )?Machine Check",
        "mce",
        "machine check exception",
        stack="none",
        no_stack=True,
    ),
    F(
        r"mce: \[Hardware Error\]: Machine check events logged",
        "mce",
        "machine check events logged",
        stack="none",
        no_stack=True,
        starts_report=False,
    ),
    F(
        r"Oops: [Kk]ernel access of bad area",  # 2.4 powerpc: lowercase
        "paging-request",
        "BUG: unable to handle kernel paging request in {func}",
        stack="ip",
    ),
    F(r"Oops: Exception in kernel mode", "bug", "Oops in {func}", stack="ip"),
    # `Oops: 0000 [#1]`, `Oops[#1]:` (MIPS), `Oops [#1]` (riscv), `Oops: <text>, sig: 11 [#1]` (powerpc);
    # not a printk that starts with the word (`Oops: efitime: can't read time!`)
    F(
        r"Oops(?:: [0-9a-f]{1,16} \[#\d|\[#\d| \[#\d|: [\w ]{1,60}, sig: \d)",
        "unknown",
        "Oops in {func}",
        stack="ip",
        starts_report=False,
    ),
    # --- an oops header no entry above knows: the line itself is the title ---------------------
    F(r"(?:^|^[\w\-.]+ [\w\-.:]+: )((?:WARNING|BUG|INFO): \S.*?)\s*$", "", "{h1}", stack="none", fallback=True),
)

# Lines with an oops keyword that are not reports (syzkaller's ignore lists, plus boot notices).
IGNORE = re.compile(
    r"ODEBUG:|Boot_DEBUG:|xlog_status:|\bDEBUG:|BUG: no syscalls can create resource|"
    r"WARNING: /etc/ssh/moduli does not exist|WARNING: workqueue cpumask: online intersect|"
    r"WARNING: [Tt]he mand mount option|WARNING: Unsupported flag value|WARNING: Unprivileged eBPF is enabled|"
    r"WARNING: fbcon: Driver|WARNING: See https.* for mitigation options|WARNING: kernel not compiled with|"
    r"EXT4-[Ff][Ss](?: \(.*\))?:|(?i:warning: .* uses (?:deprecated v2 capabilities|wireless extensions))|"
    r"XFS \(\w+\): WARNING|INFO: lockdep is turned off|INFO: Stall ended before state dump start|"
    r"INFO: NMI handler|INFO: recovery required on readonly filesystem|(?:handler|interrupt).*took too long|"
    r"INFO: sys_.* is not present in /proc/kallsyms|INFO: no syscalls can create resource|rmt_storage:INFO:|"
    r"_INFO:|general protection fault .* error:\d+ in |INFO: (?:Slab|Object) 0x|INFO: 0x[0-9a-f]{1,16}-0x"
)


# Messages that are no crash but print a stack of their own (syzkaller's infoMessagesWithStack), with
# what prints them. Inside a report whose lines carry no caller id (CONFIG_PRINTK_CALLER), their frames
# and the report's are interleaved on the console: the report is read up to that line.
INFO_WITH_STACK: tuple[tuple[str, str], ...] = (
    ("vmalloc: allocation failure:", "warn_alloc() for a failed vmalloc (mm/vmalloc.c)"),
    ("FAULT_INJECTION: forcing a failure", "fault injection (lib/fault-inject.c)"),
    ("FAULT_FLAG_ALLOW_RETRY missing", "handle_userfault() (fs/userfaultfd.c)"),
)

# What varies between runs of one bug, replaced in titles (syzkaller's convention, so that one
# bug has one title): executor names, addresses, file lines, `func+0x1/0x2` offsets, numbers.
TITLE_REPLACEMENTS: tuple[tuple[linear.Pattern, str], ...] = tuple(
    (linear.compile(a), b)
    for a, b in (
        (r"syz-executor\.?[0-9]+(?:(?:/|:)[0-9]+)?", "syz-executor"),
        (r"syz\.[0-9]+\.[0-9]+", "syz"),
        (r"syzkaller[0-9]+", "syzkaller"),
        (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", r"\1ADDR"),
        (r"([^a-zA-Z0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}", r"\1IP"),
        (r"(\.\w+)(:[0-9]+)+", r"\1:LINE"),
        (r"([a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", r"\1"),
        (r"CPU#[0-9]+", "CPU"),
        (r"(\W)(\d+)(\W|$)", r"\1NUM\3"),
        (r"(?:\d+){7,}", "NUM"),
    )
)

# Lines that end a report when seen after its start.
END_MARKERS = re.compile(
    r"---\[ end (?:trace [0-9a-f]+|Kernel panic[^\]]*) \]---|^Kernel Offset: |^Rebooting in \d+ seconds|"
    r"^---\[ end trace|^ end_request:|^==================================================================$"
)

# Lines that appear inside reports but must not start one (a crash's own secondary lines).
CONTINUATION = re.compile(r"^(?:Oops|Code: |Modules linked in|CPU: |Hardware name:|Call Trace|RIP: |pc : )")

# Cheap prefilter: a byte chunk without any of these cannot contain a report header.
TRIGGER = re.compile(
    rb"BUG|WARNING|INFO:|Oops|Unable to handle|general protection|Kernel panic|kernel BUG|"
    rb"UBSAN|list_(?:add|del)|corruption|refcount_t|Internal error|divide error|double fault|"
    rb"stack segment|invalid opcode|LOCKUP|Hardware Error|unregister_netdevice|usercopy|"
    rb"rcu_(?:preempt|sched|bh)|Unhandled fault|Alignment trap|ODEBUG|VFS: |cut here|divide_error|"
    rb"rust_kernel: panicked|trusty: panic|page allocation failure"
)
