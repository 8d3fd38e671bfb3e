"""Per-architecture knowledge of oops text: how to tell the architecture, read the register
dump, the faulting IP line and the fault address.

Register names are kept exactly as the oops prints them (`RAX`, `R8`, `CR2`, `x19`, `pc`,
`lr`, `GPR03`...), because findings quote them back to a person who has the log open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ktriage import linear
from ktriage.logs.frames import parse_location
from ktriage.model import Location

# --- architecture ------------------------------------------------------------------------------

_ARCH_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "x86_64",
        re.compile(
            r"\bRIP: [0-9a-f]{4}:|\bRAX: [0-9a-f]{16}|\bRSP: [0-9a-f]{4}:|\bR13: [0-9a-f]{16}|"
            r"\.x86_64\b|\bx86_64\b|entry_SYSCALL_64|\b__x64_sys_|\bsystem_call_fastpath\b|\bx86_64_start_kernel\b|"
            r"-amd64 #|\bRIP: [0-9a-f]{4}:\[<[0-9a-f]{16}>\]|\bIP: \[<[0-9a-f]{16}>\]|"
            # the trailer 2.6-4.x print after the trace: `RIP  [<ffffffff81014ec3>] rapl_cpu_online+0x63/0x80`
            r"\bRIP  \[<[0-9a-f]{16}>\]"
        ),
    ),
    (
        "arm64",
        re.compile(
            r"\bx29: [0-9a-f]{16}|\bpstate: [0-9a-f]{8}|\bESR = 0x|\bel0t?_64_sync|"
            r"\bel1h?_64_sync|\.aarch64\b|\b__arm64_sys_|\bpc : [\w.]+\+0x"
        ),
    ),
    # little-endian first: its oops says `LE` in the MSR bits (`<SF,...,LE>`) or the banner (`LE SMP`, `LE PAGE_SIZE`)
    (
        "ppc64le",
        re.compile(r"\bMSR:\s+[0-9a-f]{16} <[A-Z0-9,\[\]]{0,80}\bLE\b|^LE (?:SMP|PAGE_SIZE)\b|\bppc64le\b", re.M),
    ),
    # 64-bit register values only: a 32-bit PowerPC dump (8-digit GPRs) is not ppc64, and the vocabulary has no ppc32
    (
        "ppc64",
        re.compile(r"\bNIP:\s+[0-9a-f]{16}|\bNIP \[[0-9a-f]{16}\]|\bGPR00: [0-9a-f]{16}|\bMSR:\s+[0-9a-f]{16}|\.ppc64"),
    ),
    ("s390x", re.compile(r"\bKrnl PSW\b|\bKrnl GPRS:|\.s390x\b")),
    ("riscv64", re.compile(r"\bs?epc ?: [0-9a-f]{16} ra ?:|\bepc : \w+\+0x|\bstatus: [0-9a-f]{16} badaddr:|\.riscv64")),
    (
        "i386",
        re.compile(
            r"\bEIP: [0-9a-f]{4}:|\bEIP: \w+\+0x|\bEAX: [0-9a-f]{8}\b|\.i686\b|\bEIP is at\b|\bsysenter_do_call\b|"
            r"\bIP: \[<[0-9a-f]{8}>\]|^\*pdpt = [0-9a-f]{16}|^EIP: \[<[0-9a-f]{8}>\] .* SS:ESP ",
            re.M,
        ),
    ),
    (
        "arm",
        re.compile(
            r"\bpc : \[<[0-9a-f]{8}>\]|\bPC is at\b|\bpsr: [0-9a-f]{8}|\.armv7|\bISA (?:ARM|Thumb)\b|"
            r"^Internal error: Oops.{0,60}\[#\d{1,3}\](?: [A-Z_]{2,8}){0,4} (?:ARM|THUMB2)\s*$|"
            r"^\[<[0-9a-f]{8}>\] ?\([.\w$]{1,128}(?:\+0x[0-9a-f]{1,8}/0x[0-9a-f]{1,8})?(?: \[[\w\-]{1,64}\])?\) from \[<|"
            # the unwinder of kernels without kallsyms (arch/arm/kernel/traps.c dump_backtrace_entry)
            r"^Function entered at \[<[0-9a-f]{8}>\] from \[<[0-9a-f]{8}>\]",
            re.M,
        ),
    ),
    # MIPS show_stacktrace: `Stack : 805a0000 83ccfb00 ...` (ARM prints `Stack: (0x...)`)
    ("mips", re.compile(r"\bepc\s+: [0-9a-f]{8,16}|\$ 0\s+:|^Stack : (?:[0-9a-f]{8}|[0-9a-f]{16}) ", re.M)),
)


# x86 machines named by the `Hardware name:` line (DMI): the word size then comes from the kernel addresses
_X86_HARDWARE = re.compile(
    r"^Hardware name: (?:QEMU Standard PC \((?:i440FX|Q35)|Bochs\b|VMware|innotek GmbH VirtualBox|Xen HVM domU|"
    r"Microsoft Corporation Virtual Machine|Google Google Compute Engine|Amazon EC2)",
    re.M,
)
_X86_64_ADDRESS = re.compile(r"\b(?:ffffffff[89a][0-9a-f]{7}|ffff8[0-9a-f]{11})\b")
# a module built for x86_64 (`aes_x86_64`, `sha1_ssse3` is not enough: i386 has it too)
_X86_64_MODULE = re.compile(r"^Modules linked in:.{0,4000}?\b[a-z0-9]{2,12}_x86_64\b", re.M)


def detect_arch(lines: Sequence[str]) -> str | None:
    text = "\n".join(lines)
    for arch, rx in _ARCH_HINTS:
        if rx.search(text):
            return arch
    if _X86_64_MODULE.search(text):
        return "x86_64"
    if _X86_HARDWARE.search(text):
        return "x86_64" if _X86_64_ADDRESS.search(text) else None
    return None


# --- which register block is the crash's -------------------------------------------------------

# An x86 IP line with its code segment: `RIP: 0010:func+0x..` (kernel), `RIP: 0033:0x7f..` (user).
_X86_IP_CS = re.compile(r"^\s*[ER]IP: ([0-9a-f]{4}):")
_IP_WORD = re.compile(r"^[ER]?IP:")  # an IP line starts the next block, kernel or user
_X86_REG_LINE = re.compile(r"^\s*(?:R[A-Z0-9]{1,3}|E[A-Z]{2}|ORIG_RAX|FS|GS|CS|DS|ES|SS|CR\d|DR\d|EFLAGS|RFLAGS)\s?:")


def _user_cs(line: str) -> bool:
    m = _X86_IP_CS.match(line)
    return m is not None and int(m.group(1), 16) & 3 == 3  # CPL 3: 0033, 0023 (compat), 0073 (i386)


def kernel_lines(lines: Sequence[str]) -> list[str]:
    """The report's lines without the user-mode register blocks.

    A syscall's oops or hang also prints the user-space state the task entered the kernel with
    (`RIP: 0033:0x7f..`, `RSP: 002b:00007ffc..`, a second RAX..R15 set; 5.x+ adds that block's own
    `Code:` line right after its IP line). None of it is the crash's: the faulting IP, registers and
    code bytes are the kernel block's. A user block runs from its IP line over the register lines
    that follow; a `Code:` line counts as the user's only right after the user IP line (4.x prints
    the kernel's `Code:` at the end of the dump, after the user block: syzkaller corpus 113).
    """
    out: list[str] = []
    in_user = False
    prev_user_ip = False
    for line in lines:
        if _user_cs(line):
            in_user, prev_user_ip = True, True
            continue
        if in_user:
            s = line.strip()
            if (prev_user_ip and s.startswith("Code: ")) or (_X86_REG_LINE.match(line) and not _IP_WORD.match(s)):
                prev_user_ip = False
                continue
            in_user = False
        prev_user_ip = False
        out.append(line)
    return out


# --- registers ---------------------------------------------------------------------------------

_X86_REG = re.compile(
    r"\b(R[A-Z0-9]{1,3}|E[A-Z]{2}|ORIG_RAX|EFLAGS|RFLAGS|CR[0-4]|DR[0-7]|knlGS|[CDEFGS]S)\s?:\s*"
    r"(?:[0-9a-f]{4}:)?([0-9a-f]{4,16})\b"
)
_ARM64_REG = re.compile(r"\b(x\d{1,2}|sp|pc|lr|pstate)\s*:\s*([0-9a-f]{8,16})\b")
_ARM_REG = re.compile(r"\b(r\d{1,2}|sp|ip|fp|pc|lr|psr)\s*:\s*\[?<?([0-9a-f]{8})>?\]?")
_GPR = re.compile(r"^GPR(\d\d):((?:\s+[0-9a-f]{8,16})+)")
_S390 = linear.compile(r"^\s*(?:Krnl GPRS:)?((?:\s*[0-9a-f]{16}){4})\s*$")
_GENERIC_REG = re.compile(r"\b([a-z][a-z0-9]{0,5})\s*:\s*([0-9a-f]{8,16})\b")


def parse_registers(lines: Sequence[str], arch: str | None) -> dict[str, int]:
    """The crash's registers: on x86 those of the first kernel-mode block only (user-mode blocks
    dropped by `kernel_lines`; a later kernel block, e.g. the same registers printed again under a
    panic's trace, is not merged in)."""
    regs: dict[str, int] = {}
    if arch in ("x86_64", "i386"):
        kernel_ip_seen = False
        for line in kernel_lines(lines):
            s = line.strip()
            if s.startswith(("RIP:", "EIP:", "IP:")):
                if _X86_IP_CS.match(s):
                    if kernel_ip_seen and any(k in regs for k in ("RAX", "EAX", "RSP", "ESP")):
                        break  # a second kernel block
                    kernel_ip_seen = True
                m = re.search(r"\[<([0-9a-f]+)>\]", s)
                if m:
                    regs.setdefault("RIP" if arch == "x86_64" else "EIP", int(m.group(1), 16))
                continue
            if not re.match(r"^(?:R[A-Z0-9]{1,3}|E[A-Z]{2}|ORIG_RAX|FS|CS|DS|ES|CR\d|DR\d|EFLAGS|RFLAGS|ESP)\s?:", s):
                continue
            for m in _X86_REG.finditer(s):
                name = "R8" if m.group(1) == "R8" else m.group(1)
                regs.setdefault(name, int(m.group(2), 16))
            # "RSP: 0018:ffff893c4f527810" puts SS before the value
            m = re.search(r"\bRSP: ([0-9a-f]{4}):([0-9a-f]{16})", s)
            if m:
                regs["RSP"] = int(m.group(2), 16)
                regs.setdefault("SS", int(m.group(1), 16))
    elif arch == "arm64":
        for line in lines:
            s = line.strip()
            if s.startswith(("pc :", "lr :")):
                continue
            for m in _ARM64_REG.finditer(s):
                regs.setdefault(m.group(1), int(m.group(2), 16))
    elif arch == "arm":
        for line in lines:
            for m in _ARM_REG.finditer(line):
                regs.setdefault(m.group(1), int(m.group(2), 16))
    elif arch in ("ppc64", "ppc64le"):
        for line in lines:
            m = _GPR.match(line.strip())
            if m:
                base = int(m.group(1))
                for i, v in enumerate(m.group(2).split()):
                    regs[f"r{base + i}"] = int(v, 16)
            for m2 in re.finditer(r"\b(NIP|LR|CTR|MSR|XER|CCR|CR|DAR|DSISR|TRAP)\s*[:\[]\s*([0-9a-f]{8,16})", line):
                regs.setdefault(m2.group(1), int(m2.group(2), 16))
    elif arch == "s390x":
        gprs: list[int] = []
        inside = False
        for line in lines:
            if "Krnl GPRS:" in line:
                inside = True
            if inside:
                m = _S390.match(line)
                if m:
                    gprs += [int(v, 16) for v in m.group(1).split()]
                else:
                    inside = "Krnl GPRS:" in line and not m
            m = re.search(r"Krnl PSW : ([0-9a-f]{16}) ([0-9a-f]{16})", line)
            if m:
                regs["PSW.mask"], regs["PSW.addr"] = int(m.group(1), 16), int(m.group(2), 16)
        for i, v in enumerate(gprs[:16]):
            regs[f"r{i}"] = v
    else:
        for line in lines:
            for m in _GENERIC_REG.finditer(line):
                regs.setdefault(m.group(1), int(m.group(2), 16))
    return regs


# --- faulting IP -------------------------------------------------------------------------------

_IP_LINES = (
    # x86 trailers after the trace (2.6-4.x): `RIP  [<ffffffff81014ec3>] rapl_cpu_online+0x63/0x80`,
    # `EIP: [<c117c906>] remove_proc_entry+0x76/0x210 SS:ESP 0068:dd003db4`
    re.compile(r"^\s*[ER]IP:? +\[<[0-9a-f]+>\] +(\S+\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[\w\-]+\])?)"),
    re.compile(
        r"^\s*pc: [0-9a-f]{8,16}: (\S+\+0x.*)$"
    ),  # powerpc xmon "    pc: c00000000047d72c: __do_softirq+0xd4/0x2b0"
    re.compile(r"^\s*RIP: [0-9a-f]{4}:(.*)$"),  # x86_64 4.x+ "RIP: 0010:func+0x2d/0x110 [mod]"
    re.compile(r"^\s*RIP:\s+\[<[0-9a-f]+>\](.*)$"),
    re.compile(r"^\s*RIP: (?!0033)(\S.*\+0x.*)$"),
    re.compile(r"^\s*N?IP:\s*(\[<[0-9a-f]+>\].*)$"),  # 2.6.32 "IP: [<ffffffff81475718>] nf_queue+0x98/0x230"
    re.compile(r"^\s*EIP: [0-9a-f]{4}:(.*)$"),
    re.compile(r"^\s*EIP: (\S.*\+0x.*)$"),
    re.compile(r"^\s*pc : (.*)$"),  # arm64
    re.compile(r"^\s*PC is at (.*)$"),  # arm, older arm64
    re.compile(r"^\s*NIP \[[0-9a-f]+\] (.*)$"),  # ppc64
    re.compile(r"^\s*epc : (.*)$"),  # riscv
    re.compile(r"^\s*epc\s+: [0-9a-f]{8,16} (\S.*)$"),  # mips "epc   : 8003ab3c kthread_data+0x4/0xc"
    re.compile(r"^\s*EIP is at (\S.*)$"),  # i386 2.6
    re.compile(r"^\s*Krnl PSW : [0-9a-f]+ [0-9a-f]+ \((.*)\)"),  # s390x
)


def parse_ip(lines: Sequence[str]) -> Location | None:
    """The faulting instruction pointer, from the first IP-style line that names a function.
    A user-mode IP (`RIP: 0033:0x47b7a0`, printed for the syscall a task entered by) is not one.
    An address-only IP line is kept only when no later IP line names the function: i386 prints
    `EIP: 0060:[<c13ddd69>] EFLAGS: ...` first and `EIP is at scsi_setup_fs_cmnd+0x89/0x90` next."""
    bare: tuple[int, Location] | None = None
    for i, loc in _ip_candidates(lines):
        if bare is not None and i - bare[0] > 3:
            break
        if loc.symbol:
            if bare is not None and loc.address is None:
                loc = Location(loc.symbol, loc.offset, loc.size, loc.module, bare[1].address)
            return loc
        bare = bare or (i, loc)
    return bare[1] if bare else None


def _ip_candidates(lines: Sequence[str]) -> Iterator[tuple[int, Location]]:
    """Every IP-style line's location with its index, in order (one per line)."""
    for i, line in enumerate(kernel_lines(lines)):
        for rx in _IP_LINES:
            m = rx.match(line)
            if not m:
                continue
            rest = m.group(1)
            loc = parse_location(rest)
            if loc:
                if loc.address is None:
                    a = re.search(r"\[<([0-9a-f]+)>\]", line)
                    if a:
                        loc = Location(loc.symbol, loc.offset, loc.size, loc.module, int(a.group(1), 16))
                yield i, loc
                break
            a = re.search(r"(?:0x|\[<)([0-9a-f]{1,16})", rest)
            if a and ("(null)" in rest or re.fullmatch(r"\s*0x[0-9a-f]+\s*", rest) or "[<" in rest):
                yield i, Location(address=int(a.group(1), 16))
                break


# --- fault address and access ------------------------------------------------------------------

# Every address ends at a word boundary: a header wrapped after "at" must not read the "a" of "at" as 0xa.
_FAULT_ADDR = (
    re.compile(r"NULL pointer dereference at (?:virtual address )?(?:0x)?([0-9a-f]+)\b"),
    re.compile(r"NULL pointer dereference at \(null\)"),
    re.compile(
        r"(?:NULL pointer dereference|page fault for address|paging request at|access to user memory at)"
        r"(?:, address)?:? (?:virtual address )?(?:0x)?([0-9a-f]+)\b"
    ),
    re.compile(r"paging request at (?:virtual address )?(?:0x)?([0-9a-f]+)\b"),
    re.compile(r"paging request for (?:data|instruction fetch) at address 0x([0-9a-f]{1,16})\b"),  # powerpc
    re.compile(r"Unable to handle kernel [a-z \-]{4,60} at virtual address (?:0x)?([0-9a-f]{1,16})\b"),  # arm64 5.x+
    re.compile(r"non-canonical address (?:0x)?([0-9a-f]+)"),
    re.compile(r"\b(?:Read|Write) of size \d+ at addr (?:0x)?([0-9a-f]+)"),
    re.compile(r"\b(?:read|write) at 0x([0-9a-f]+) \("),  # KFENCE
    re.compile(r"Faulting instruction address: 0x[0-9a-f]+\s*$"),  # ppc, address in DAR
    re.compile(r"\bFAR = 0x([0-9a-f]+)"),
    re.compile(r"^DEAR: ([0-9A-Fa-f]{8}), ESR: "),  # powerpc 4xx: the data exception address register
    re.compile(r"\bbadaddr: ([0-9a-f]{16})"),
    re.compile(r"Unhandled fault: .* at 0x([0-9a-f]+)"),
    re.compile(r"Failing address: ([0-9a-f]+) TEID"),
)


def parse_fault_address(lines: Sequence[str], regs: dict[str, int]) -> int | None:
    for line in lines:
        for rx in _FAULT_ADDR:
            m = rx.search(line)
            if m:
                if not m.groups():
                    if "(null)" in line:
                        return 0
                    continue
                return int(m.group(1), 16)
    return None


_PF_ACCESS = re.compile(r"#PF: supervisor (read|write|instruction fetch) access")
_OOPS_CODE = re.compile(r"\bOops: (?:[a-z ]+: )?([0-9a-f]{4}) \[#\d+\]")


def parse_access(lines: Sequence[str], arch: str | None) -> tuple[str | None, int | None]:
    """read/write/exec as the oops states it, and the x86 page-fault error code."""
    access: str | None = None
    code: int | None = None
    for line in lines:
        m = _PF_ACCESS.search(line)
        if m:
            access = {"read": "read", "write": "write", "instruction fetch": "exec"}[m.group(1)]
        m = re.search(r"#PF: error_code\(0x([0-9a-f]+)\)", line)
        if m:
            code = int(m.group(1), 16)
        m = _OOPS_CODE.search(line)
        if m and code is None and arch in ("x86_64", "i386", None) and "general protection" not in line:
            code = int(m.group(1), 16)
        m = re.search(r"\b(Read|Write) of size \d+", line)
        if m and access is None:
            access = m.group(1).lower()
        if arch == "arm64":
            m = re.search(r"\bWnR = ([01])", line)
            if m:
                access = "write" if m.group(1) == "1" else "read"
            if "execute from non-executable memory" in line:
                access = "exec"
        if "kernel tried to execute NX-protected page" in line:
            access = "exec"
    if access is None and code is not None and arch in ("x86_64", "i386", None):
        access = "exec" if code & 0x10 else "write" if code & 0x2 else "read"
    return access, code
