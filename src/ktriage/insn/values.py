"""What a 64-bit value in an oops looks like: NULL+offset, ERR_PTR, poison, region of the address space.

The tables are data, taken from the kernel headers so that a reader can check them:
include/linux/poison.h (list/timer/slab poison), include/uapi/asm-generic/errno*.h and
include/linux/errno.h (ERR_PTR codes), Documentation/arch/x86/x86_64/mm.rst (x86_64 layout),
Documentation/arch/arm64/memory.rst, mm/kasan (shadow offsets). Classification is deliberately
conservative: a value gets a label only when the label is what the kernel itself would produce.
"""

from __future__ import annotations

from dataclasses import dataclass

MASK64 = (1 << 64) - 1
NULL_LIMIT = 0x10000  # below this a fault is "NULL + member offset" (mmap_min_addr is at most 64K)
MAX_ERRNO = 4095

# include/uapi/asm-generic/errno-base.h, errno.h, include/linux/errno.h (kernel-internal 512+)
ERRNO_NAMES: dict[int, str] = {
    1: "EPERM",
    2: "ENOENT",
    3: "ESRCH",
    4: "EINTR",
    5: "EIO",
    6: "ENXIO",
    7: "E2BIG",
    8: "ENOEXEC",
    9: "EBADF",
    10: "ECHILD",
    11: "EAGAIN",
    12: "ENOMEM",
    13: "EACCES",
    14: "EFAULT",
    15: "ENOTBLK",
    16: "EBUSY",
    17: "EEXIST",
    18: "EXDEV",
    19: "ENODEV",
    20: "ENOTDIR",
    21: "EISDIR",
    22: "EINVAL",
    23: "ENFILE",
    24: "EMFILE",
    25: "ENOTTY",
    26: "ETXTBSY",
    27: "EFBIG",
    28: "ENOSPC",
    29: "ESPIPE",
    30: "EROFS",
    31: "EMLINK",
    32: "EPIPE",
    33: "EDOM",
    34: "ERANGE",
    35: "EDEADLK",
    36: "ENAMETOOLONG",
    37: "ENOLCK",
    38: "ENOSYS",
    39: "ENOTEMPTY",
    40: "ELOOP",
    42: "ENOMSG",
    43: "EIDRM",
    44: "ECHRNG",
    45: "EL2NSYNC",
    46: "EL3HLT",
    47: "EL3RST",
    48: "ELNRNG",
    49: "EUNATCH",
    50: "ENOCSI",
    51: "EL2HLT",
    52: "EBADE",
    53: "EBADR",
    54: "EXFULL",
    55: "ENOANO",
    56: "EBADRQC",
    57: "EBADSLT",
    59: "EBFONT",
    60: "ENOSTR",
    61: "ENODATA",
    62: "ETIME",
    63: "ENOSR",
    64: "ENONET",
    65: "ENOPKG",
    66: "EREMOTE",
    67: "ENOLINK",
    68: "EADV",
    69: "ESRMNT",
    70: "ECOMM",
    71: "EPROTO",
    72: "EMULTIHOP",
    73: "EDOTDOT",
    74: "EBADMSG",
    75: "EOVERFLOW",
    76: "ENOTUNIQ",
    77: "EBADFD",
    78: "EREMCHG",
    79: "ELIBACC",
    80: "ELIBBAD",
    81: "ELIBSCN",
    82: "ELIBMAX",
    83: "ELIBEXEC",
    84: "EILSEQ",
    85: "ERESTART",
    86: "ESTRPIPE",
    87: "EUSERS",
    88: "ENOTSOCK",
    89: "EDESTADDRREQ",
    90: "EMSGSIZE",
    91: "EPROTOTYPE",
    92: "ENOPROTOOPT",
    93: "EPROTONOSUPPORT",
    94: "ESOCKTNOSUPPORT",
    95: "EOPNOTSUPP",
    96: "EPFNOSUPPORT",
    97: "EAFNOSUPPORT",
    98: "EADDRINUSE",
    99: "EADDRNOTAVAIL",
    100: "ENETDOWN",
    101: "ENETUNREACH",
    102: "ENETRESET",
    103: "ECONNABORTED",
    104: "ECONNRESET",
    105: "ENOBUFS",
    106: "EISCONN",
    107: "ENOTCONN",
    108: "ESHUTDOWN",
    109: "ETOOMANYREFS",
    110: "ETIMEDOUT",
    111: "ECONNREFUSED",
    112: "EHOSTDOWN",
    113: "EHOSTUNREACH",
    114: "EALREADY",
    115: "EINPROGRESS",
    116: "ESTALE",
    117: "EUCLEAN",
    118: "ENOTNAM",
    119: "ENAVAIL",
    120: "EISNAM",
    121: "EREMOTEIO",
    122: "EDQUOT",
    123: "ENOMEDIUM",
    124: "EMEDIUMTYPE",
    125: "ECANCELED",
    126: "ENOKEY",
    127: "EKEYEXPIRED",
    128: "EKEYREVOKED",
    129: "EKEYREJECTED",
    130: "EOWNERDEAD",
    131: "ENOTRECOVERABLE",
    132: "ERFKILL",
    133: "EHWPOISON",
    512: "ERESTARTSYS",
    513: "ERESTARTNOINTR",
    514: "ERESTARTNOHAND",
    515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK",
    517: "EPROBE_DEFER",
    518: "EOPENSTALE",
    519: "ENOPARAM",
    521: "EBADHANDLE",
    522: "ENOTSYNC",
    523: "EBADCOOKIE",
    524: "ENOTSUPP",
    525: "ETOOSMALL",
    526: "ESERVERFAULT",
    527: "EBADTYPE",
    528: "EJUKEBOX",
    529: "EIOCBQUEUED",
    530: "ERECALLCONFLICT",
    531: "ENOGRACE",
}

# include/linux/poison.h: POISON_POINTER_DELTA is CONFIG_ILLEGAL_POINTER_VALUE (0xdead000000000000
# on x86_64 and arm64, 0 on 32-bit, where the poison is just a small address).
POISON_POINTER_DELTA = {"x86_64": 0xDEAD000000000000, "arm64": 0xDEAD000000000000}
POINTER_POISONS: dict[int, str] = {
    0x100: "LIST_POISON1 (list_del() set entry->next: the list entry was used after list_del)",
    0x122: "LIST_POISON2 (list_del() set entry->prev: the list entry was used after list_del)",
    0x200: "LIST_POISON2 as defined before v4.5 (0x200) (entry->prev after list_del)",
    0x300: "TIMER_ENTRY_STATIC (a statically initialized timer's entry.pprev)",
}
OLD_32BIT_POISONS = {0x00100100: "LIST_POISON1 (pre-2.6.35 value)", 0x00200200: "LIST_POISON2 (pre-2.6.35 value)"}

# Repeated-byte patterns: mm/slab.h, include/linux/poison.h
BYTE_POISONS: dict[int, tuple[str, str]] = {
    0x6B: ("POISON_FREE", "slab object freed (slub_debug/SLAB poisoning): use-after-free"),
    0x5A: ("POISON_INUSE", "slab object allocated but never initialized (slab poisoning)"),
    0xA5: ("POISON_END", "end byte of a poisoned slab object"),
    0xBB: ("SLUB_RED_INACTIVE", "SLUB red zone of a free object: out-of-bounds or use-after-free"),
    0xCC: ("SLUB_RED_ACTIVE", "SLUB red zone of an allocated object (also POISON_FREE_INITMEM): out-of-bounds"),
    0xAA: ("PAGE_POISON", "page poisoning (freed page): use-after-free of a page"),
}
WORD_POISONS: dict[int, str] = {
    0xDEAD4EAD: "SPINLOCK_MAGIC (a debug spinlock: the pointer was read from memory that holds a spinlock)",
    0xDEAF1EED: "RWLOCK_MAGIC (a debug rwlock: the pointer was read from memory that holds a rwlock)",
    0xDEADBEEF: "0xdeadbeef poison",
    0x09F91102: "SLAB RED_INACTIVE (upper half of 0x09f911029d74e35b)",
    0xD84156C5: "SLAB RED_ACTIVE (upper half of 0xd84156c5635688c0)",
}
ZERO_SIZE_PTR = 0x10

# Generic KASAN: shadow = (addr >> 3) + KASAN_SHADOW_OFFSET (arch/*/Kconfig, arch/arm64/Makefile)
KASAN_SHADOW_OFFSETS = {
    "x86_64": (0xDFFFFC0000000000,),
    "arm64": (
        0xDFFFA00000000000,
        0xDFFF800000000000,
        0xDFFFFFF800000000,
        0xDFFFFFD000000000,
        0xDFFFF00000000000,
        0xDFFF600000000000,
    ),
}

# x86_64 4-level and 5-level (la57) layout, Documentation/arch/x86/x86_64/mm.rst. Ranges cover
# both the pre-4.20 and current direct map start (0xffff880000000000 / 0xffff888000000000).
X86_64_REGIONS: tuple[tuple[int, int, str, str], ...] = (
    (0xFFFF800000000000, 0xFFFF87FFFFFFFFFF, "hole", "guard hole / hypervisor area"),
    (0xFFFF880000000000, 0xFFFFC87FFFFFFFFF, "direct-map", "direct map of physical memory (kmalloc/slab/page)"),
    (0xFFFFC88000000000, 0xFFFFC8FFFFFFFFFF, "hole", "unused hole"),
    (0xFFFFC90000000000, 0xFFFFE8FFFFFFFFFF, "vmalloc", "vmalloc/ioremap (also vmap'ed task stacks)"),
    (0xFFFFE90000000000, 0xFFFFE9FFFFFFFFFF, "hole", "unused hole"),
    (0xFFFFEA0000000000, 0xFFFFEAFFFFFFFFFF, "vmemmap", "vmemmap (struct page array)"),
    (0xFFFFEB0000000000, 0xFFFFEBFFFFFFFFFF, "hole", "unused hole"),
    (0xFFFFEC0000000000, 0xFFFFFBFFFFFFFFFF, "kasan-shadow", "KASAN shadow memory"),
    (0xFFFFFC0000000000, 0xFFFFFDFFFFFFFFFF, "hole", "unused hole"),
    (0xFFFFFE0000000000, 0xFFFFFE7FFFFFFFFF, "cpu-entry-area", "cpu_entry_area mapping"),
    (0xFFFFFE8000000000, 0xFFFFFEFFFFFFFFFF, "hole", "unused hole"),
    (0xFFFFFF0000000000, 0xFFFFFF7FFFFFFFFF, "espfix", "%esp fixup stacks"),
    (0xFFFFFF8000000000, 0xFFFFFFEEFFFFFFFF, "hole", "unused hole"),
    (0xFFFFFFEF00000000, 0xFFFFFFFEFFFFFFFF, "efi", "EFI region mapping"),
    (0xFFFFFFFF00000000, 0xFFFFFFFF7FFFFFFF, "hole", "unused hole"),
    (0xFFFFFFFF80000000, 0xFFFFFFFF9FFFFFFF, "kernel-text", "kernel image (text/data)"),
    (
        0xFFFFFFFFA0000000,
        0xFFFFFFFFBFFFFFFF,
        "kernel-text",
        "kernel image with KASLR (or the module area on kernels without KASLR)",
    ),
    (0xFFFFFFFFC0000000, 0xFFFFFFFFFEFFFFFF, "module", "module area"),
    (0xFFFFFFFFFF000000, 0xFFFFFFFFFFFFEFFF, "fixmap", "fixmap / vsyscall"),
)
X86_64_LA57_REGIONS: tuple[tuple[int, int, str, str], ...] = (
    (0xFF11000000000000, 0xFF90FFFFFFFFFFFF, "direct-map", "direct map of physical memory (5-level paging)"),
    (0xFFA0000000000000, 0xFFD1FFFFFFFFFFFF, "vmalloc", "vmalloc/ioremap (5-level paging)"),
    (0xFFD4000000000000, 0xFFD5FFFFFFFFFFFF, "vmemmap", "vmemmap (5-level paging)"),
    (0xFFDF000000000000, 0xFFFBFFFFFFFFFFFF, "kasan-shadow", "KASAN shadow memory (5-level paging)"),
)
KERNEL_POINTER_REGIONS = (
    "direct-map",
    "vmalloc",
    "vmemmap",
    "kernel-text",
    "module",
    "cpu-entry-area",
    "kernel",
    "fixmap",
    "efi",
    "espfix",
    "kasan-shadow",
    "kernel-data",
)

# CONFIG_RANDOMIZE_MEMORY (arch/x86/mm/kaslr.c, default y with KASLR, e.g. Debian/Fedora/RHEL kernels)
# moves the direct map, vmalloc and vmemmap bases, in that order, anywhere in [__PAGE_OFFSET_BASE_L4,
# CPU_ENTRY_AREA_BASE) (or KASAN_SHADOW_START): the fixed 4-level table above is then wrong
# (the lab's kernel stacks, vmalloc'ed, sit at 0xffffa495..., inside the "direct map" range).
X86_64_RANDOMIZED_DATA = (0xFFFF888000000000, 0xFFFFEBFFFFFFFFFF)
X86_64_DEFAULT_DIRECT_MAP = (0xFFFF880000000000, 0xFFFF88FFFFFFFFFF)  # up to 1 TB of RAM from the fixed base


@dataclass(frozen=True)
class ValueClass:
    """One label for a value: `kind` is a stable key, `text` explains it to a person."""

    kind: str
    text: str
    detail: dict


def signed64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def canonical(v: int, arch: str) -> bool:
    """x86_64: bits 63..47 all equal (48-bit) or 63..56 (la57). arm64: top 16 bits 0 or all ones."""
    v &= MASK64
    if arch == "x86_64":
        if (v >> 47) in (0, 0x1FFFF):
            return True
        # 5-level paging widens canonical to bits 63..56; accept only inside a la57 region
        return (v >> 56) == 0xFF and any(lo <= v <= hi for lo, hi, _, _ in X86_64_LA57_REGIONS)
    if arch == "arm64":
        return (v >> 48) in (0, 0xFFFF) or _arm64_tagged_kernel(v)
    return True


def _arm64_tagged_kernel(v: int) -> bool:
    """Tag-based KASAN / MTE put a tag in the top byte of kernel pointers (0xf0..0xff)."""
    return (v >> 56) >= 0xF0 and ((v >> 48) & 0xFF) == 0xFF


def x86_64_region(v: int, layout: str | None = None) -> tuple[str, str] | None:
    """`layout`: "randomized" (CONFIG_RANDOMIZE_MEMORY seen in the crash), "fixed", or None (unknown:
    the documented fixed layout is used, which is right for kernels without memory KASLR)."""
    la57 = (v >> 47) != 0x1FFFF and (v >> 56) == 0xFF
    lo, hi = X86_64_RANDOMIZED_DATA
    if layout == "randomized" and not la57 and lo <= v <= hi:
        return (
            "kernel-data",
            "direct map, vmalloc or vmemmap (KASLR randomizes their bases, "
            "CONFIG_RANDOMIZE_MEMORY: the address alone does not say which)",
        )
    for lo, hi, kind, text in X86_64_LA57_REGIONS if la57 else X86_64_REGIONS:
        if lo <= v <= hi:
            return kind, text
    return None


def x86_64_layout(percpu_base: int | None) -> str | None:
    """Whether an x86_64 kernel randomized its memory layout, from the per-cpu base (GS in the oops).

    The per-cpu areas are allocated in the direct map. Without CONFIG_RANDOMIZE_MEMORY the direct map
    starts at 0xffff888000000000 (0xffff880000000000 before v4.20), so GS is 0xffff88xx_xxxxxxxx on any
    machine with less than 1 TB of RAM; a GS further up means page_offset_base was randomized.
    """
    if percpu_base is None or not X86_64_RANDOMIZED_DATA[0] <= percpu_base <= X86_64_RANDOMIZED_DATA[1] + 1:
        return None
    lo, hi = X86_64_DEFAULT_DIRECT_MAP
    return "fixed" if lo <= percpu_base <= hi else "randomized"


def region(v: int, arch: str, bits: int = 64, layout: str | None = None) -> tuple[str, str]:
    """The part of the address space `v` falls in: (kind, description)."""
    v &= MASK64 if bits == 64 else 0xFFFFFFFF
    if v < NULL_LIMIT:
        return ("null", "NULL page") if v == 0 else ("small", "small integer / NULL page")
    if bits == 32:
        return ("kernel", "kernel (above PAGE_OFFSET 0xc0000000)") if v >= 0xC0000000 else ("user", "user space")
    if arch == "x86_64":
        if v <= 0x00007FFFFFFFFFFF:
            return "user", "user space"
        if not canonical(v, arch):
            return "non-canonical", "non-canonical (no mapping can exist; the CPU raises #GP)"
        return x86_64_region(v, layout) or ("kernel", "kernel space")
    if arch == "arm64":
        if v < (1 << 48):
            return "user", "user space (TTBR0)"
        if (v >> 48) == 0xFFFF or _arm64_tagged_kernel(v):
            return "kernel", "kernel space (TTBR1)" + (" with a KASAN/MTE tag" if (v >> 56) != 0xFF else "")
        return "non-canonical", "between user and kernel address ranges (no mapping can exist)"
    return "unknown", "unknown"


def err_ptr(v: int, bits: int = 64) -> int | None:
    """The errno when `v` is an ERR_PTR (-4095..-1), else None."""
    top = (1 << bits) - 1
    v &= top
    return (top + 1 - v) if v > top - MAX_ERRNO else None


def errno_name(n: int) -> str:
    return f"-{ERRNO_NAMES[n]}" if n in ERRNO_NAMES else f"-{n}"


def pointer_poison(v: int, arch: str) -> tuple[int, str, int] | None:
    """(poison base value, name, offset) when `v` is a list/timer poison or poison + small member offset."""
    delta = POISON_POINTER_DELTA.get(arch)
    if delta is None:
        for base, name in OLD_32BIT_POISONS.items():
            if 0 <= v - base < 0x1000:
                return base, name, v - base
        return None
    if (v & ~0xFFFFF & MASK64) != delta:
        return None
    low = v - delta
    for base in sorted(POINTER_POISONS, reverse=True):
        if 0 <= low - base < 0x100:
            return delta + base, POINTER_POISONS[base], low - base
    return delta, "POISON_POINTER_DELTA-based poison value", low


POISON_END = 0xA5


def byte_poison(v: int) -> tuple[int, str, str] | None:
    """A repeated slab/page poison byte in at least the top 6 bytes (the low ones may hold an offset).

    A poisoned object's last byte is POISON_END (0xa5), so an 8-byte read of its last 8 bytes gives
    0xa56b6b6b6b6b6b6b (little-endian: 0x6b * 7 then 0xa5): that counts as the 0x6b (or 0x5a) pattern.
    """
    b = (v >> 56) & 0xFF
    if b in BYTE_POISONS and all(((v >> (8 * i)) & 0xFF) == b for i in range(2, 8)):
        return (b, *BYTE_POISONS[b])
    p = (v >> 48) & 0xFF
    if b == POISON_END and p in (0x6B, 0x5A) and all(((v >> (8 * i)) & 0xFF) == p for i in range(2, 7)):
        name, text = BYTE_POISONS[p]
        return p, name, text + "; the top byte is POISON_END 0xa5, so these are the last bytes of the poisoned object"
    return None


def word_poison(v: int) -> tuple[int, str] | None:
    """A 32-bit magic in the upper half (a 64-bit read of a struct whose 2nd word is a magic)."""
    for word in (v >> 32, v & 0xFFFFFFFF):
        if word in WORD_POISONS:
            return word, WORD_POISONS[word]
    return None


def kasan_shadow(v: int, arch: str, offsets: tuple[int, ...] = ()) -> tuple[int, int, int] | None:
    """(shadow offset, first, last) of the memory a generic-KASAN shadow address `v` checks.

    KASAN instruments every access with a read of (addr >> 3) + offset; when `addr` is bogus
    (NULL + 0x58) the shadow read itself is non-canonical and the GPF shows the shadow address.
    `offsets` may add offsets seen in registers (the instrumented code loads it as a constant).
    """
    best = None
    for off in tuple(offsets) + KASAN_SHADOW_OFFSETS.get(arch, ()):
        d = (v - off) & MASK64
        if d < (1 << 61) and (best is None or d < best[1]):
            best = (off, d)
    if best is None:
        return None
    first = (best[1] << 3) & MASK64
    return best[0], first, (first + 7) & MASK64


def is_kasan_offset(v: int, arch: str) -> bool:
    return v in KASAN_SHADOW_OFFSETS.get(arch, ())


def classify(v: int, arch: str, bits: int = 64, layout: str | None = None) -> list[ValueClass]:
    """Every label that applies to `v`, most specific first."""
    out: list[ValueClass] = []
    e = err_ptr(v, bits)
    if e is not None:
        out.append(ValueClass("err-ptr", f"ERR_PTR({errno_name(e)})", {"errno": e, "name": errno_name(e)}))
        return out
    if v < NULL_LIMIT:
        kind = "NULL" if v == 0 else f"NULL + {v:#x}"
        extra = " (also ZERO_SIZE_PTR, what kmalloc(0) returns)" if v == ZERO_SIZE_PTR else ""
        out.append(ValueClass("null-offset", kind + extra, {"offset": v}))
        return out
    pp = pointer_poison(v, arch)
    if pp:
        base, name, off = pp
        text = name + (f" + {off:#x}" if off else "")
        out.append(ValueClass("list-poison", text, {"poison": base, "offset": off, "name": name.split(" (")[0]}))
    bp = byte_poison(v)
    if bp:
        out.append(
            ValueClass("slab-poison", f"{bp[1]} pattern 0x{bp[0]:02x}..: {bp[2]}", {"byte": bp[0], "name": bp[1]})
        )
    wp = word_poison(v)
    if wp:
        out.append(ValueClass("magic", wp[1], {"magic": wp[0]}))
    if is_kasan_offset(v, arch):
        out.append(ValueClass("kasan-offset", "KASAN_SHADOW_OFFSET constant", {}))
    kind, text = region(v, arch, bits, layout)
    out.append(ValueClass(kind, text, {}))
    return out
