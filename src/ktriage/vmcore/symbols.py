"""The kernel's symbols when VMCOREINFO names no kallsyms (kernels before 6.0), checked against the dump.

Sources, in order:
  1. a System.map: `--system-map FILE`, then `System.map*` files in `--debuginfo` directories, then the usual
     places for the dump's release (/boot/System.map-<release>; Debian keeps the real one in the -dbg package,
     /usr/lib/debug/boot/System.map-<release>, and a one-line placeholder in /boot; RHEL's kernel-devel in
     /usr/src/kernels/<release>/). A map is used only if, moved by VMCOREINFO's KERNELOFFSET (the KASLR slide),
     it gives every image symbol VMCOREINFO publishes (init_uts_ns, swapper_pg_dir, _stext, ...) its address in
     the dump, and its linux_banner reads "Linux version <release> " in memory. Anything else is another build:
     refused with a one-line note, never used.
  2. the kernel's own kallsyms tables, found in the dump's memory (ktriage.vmcore.kallsyms_scan) and decoded by
     drgn, with the same checks.
The caller registers the returned index as drgn's kernel symbol finder and says which source gave the symbols.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import drgn

from ktriage.vmcore.kallsyms_scan import KallsymsNotFound, find_tables

MAX_MAP_SCAN = 4000  # files looked at per --debuginfo directory
IMAGE_SPAN = 1 << 30  # VMCOREINFO symbols farther than this from _stext are not image symbols (mem_section's value)
_LINE = re.compile(rb"^([0-9a-fA-F]{8,16}) ([a-zA-Z]) (\S+)$")


@dataclass
class KernelSymbols:
    index: drgn.SymbolIndex
    source: str  # one line for the report: which source gave the symbols and how it was checked
    short: str = "kallsyms"  # the source in two words, for the BTF tier's summary
    notes: list[str] = field(default_factory=list)  # sources refused, and why


def is_system_map(path: str) -> bool:
    return os.path.basename(path).startswith("System.map")


def system_map_candidates(given: list[str], release: str) -> list[str]:
    """Explicit files first, then System.map* under the given directories, then the distro locations."""
    out: list[str] = [p for p in given if os.path.isfile(p) and is_system_map(p)]
    for d in given:
        if not os.path.isdir(d):
            continue
        seen = 0
        for root, dirs, files in os.walk(d):
            dirs.sort()
            for n in sorted(files):
                seen += 1
                if is_system_map(n):
                    out.append(os.path.join(root, n))
            if seen >= MAX_MAP_SCAN:
                break
    if release:
        out += [
            p
            for p in (
                f"/boot/System.map-{release}",
                f"/usr/lib/debug/boot/System.map-{release}",
                f"/lib/modules/{release}/build/System.map",
                f"/usr/src/kernels/{release}/System.map",
                f"/usr/src/linux-headers-{release}/System.map",
            )
            if os.path.isfile(p)
        ]
    return list(dict.fromkeys(out))


def parse_system_map(path: str) -> list[tuple[int, str, str]]:
    """(address, nm type, name) of a System.map (`nm -n vmlinux` filtered by scripts/mksysmap)."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            m = _LINE.match(line.rstrip())
            if m:
                out.append((int(m.group(1), 16), m.group(2).decode(), m.group(3).decode("utf-8", "replace")))
    return out


def image_symbols(vmcoreinfo: dict[str, str]) -> dict[str, int]:
    """SYMBOL(name)=address entries of VMCOREINFO that point into the kernel image (not mem_section's value)."""
    syms = {k[7:-1]: int(v, 16) for k, v in vmcoreinfo.items() if k.startswith("SYMBOL(") and k.endswith(")")}
    stext = syms.get("_stext")
    if stext is None:
        return syms
    return {n: a for n, a in syms.items() if abs(a - stext) < IMAGE_SPAN}


def verify(
    lookup: Callable[[str], int | None],
    prog: drgn.Program,
    vmcoreinfo: dict[str, str],
    lookup_all: Callable[[str], set[int]] | None = None,
) -> str | None:
    """None when the symbols agree with the dump, else the one-line reason they do not. `lookup_all` gives every
    address of a name (a static function may share an exported one's name)."""
    want = image_symbols(vmcoreinfo)
    compared = []
    for name, addr in sorted(want.items()):
        got = lookup(name)
        if got is None:
            continue
        if got != addr:
            return f"{name} is at {got:#x} by it, at {addr:#x} in the dump"
        compared.append(name)
    if len(compared) < 2:
        return f"only {len(compared)} of VMCOREINFO's symbols ({', '.join(sorted(want))}) could be compared"
    why = exports_disagree(lookup_all or (lambda n: {a for a in (lookup(n),) if a is not None}), prog)
    if why:
        return why
    release = vmcoreinfo.get("OSRELEASE", "")
    banner = lookup("linux_banner")
    if banner is not None and release:
        try:
            text = prog.read(banner, 64 + len(release))
        except (drgn.FaultError, ValueError):
            return None  # the page is not in the dump: the VMCOREINFO symbols decided
        if not text.startswith(f"Linux version {release} ".encode()):
            return f"linux_banner there reads {text.split(b'(')[0].decode('utf-8', 'replace').strip()!r}"
    return None


# struct kernel_symbol in __ksymtab: (value_offset, name_offset, namespace_offset) relative to the entry with
# CONFIG_HAVE_ARCH_PREL32_RELOCATIONS (x86_64, arm64 since 4.19), else (value, name[, namespace]) pointers
KSYMTAB_FORMATS = ((12, "prel32"), (24, "pointers"), (16, "pointers"))
KSYMTAB_SAMPLES = 256
MASK64 = (1 << 64) - 1


def exports_disagree(lookup_all: Callable[[str], set[int]], prog: drgn.Program) -> str | None:
    """The kernel's export table in memory names its functions and data with their runtime addresses, all over the
    image: a sample of it must agree with the symbols (two builds of one release share VMCOREINFO's symbols but not
    their text). None when they agree or when the table cannot be read (the other checks then decide)."""
    starts, stops = lookup_all("__start___ksymtab"), lookup_all("__stop___ksymtab")
    if len(starts) != 1 or len(stops) != 1:
        return None
    start, stop = min(starts), min(stops)
    if not 0 < stop - start <= 4 << 20:
        return None
    try:
        data = prog.read(start, stop - start)
    except (drgn.FaultError, ValueError):
        return None
    for size, form in KSYMTAB_FORMATS:
        if len(data) % size:
            continue
        n = len(data) // size
        checked = 0
        for k in range(0, n, max(1, n // KSYMTAB_SAMPLES)):
            entry = start + k * size
            if form == "prel32":
                voff, noff = struct.unpack_from("<ii", data, k * size)
                # 64-bit wrap-around: an exported per-CPU variable's entry points back to its offset (cpu_tss_rw 0x6000)
                value, name_at = (entry + voff) & MASK64, (entry + 4 + noff) & MASK64
            else:
                value, name_at = struct.unpack_from("<QQ", data, k * size)
            try:
                name = prog.read(name_at, 128).split(b"\0")[0].decode("ascii")
            except (drgn.FaultError, UnicodeDecodeError, ValueError):
                break
            if not name.isidentifier():
                break  # not this entry format
            got = lookup_all(name)
            if value not in got:
                where = ", ".join(f"{a:#x}" for a in sorted(got)) or "nowhere"
                return f"exported {name} is at {where} by it, at {value:#x} in the dump's export table"
            checked += 1
        else:
            if checked:
                return None
    return None


def _index(entries: list[tuple[int, str, str]]) -> drgn.SymbolIndex:
    """drgn symbols with sizes up to the next address (what kallsyms gives too)."""
    addrs = sorted({a for a, _, _ in entries})
    nxt = dict(zip(addrs, addrs[1:] + [addrs[-1]]))
    syms = []
    for a, t, name in entries:
        lower = t.lower()
        if lower in "wv":
            binding = drgn.SymbolBinding.WEAK
        elif t.isupper():
            binding = drgn.SymbolBinding.GLOBAL
        else:
            binding = drgn.SymbolBinding.LOCAL
        kind = (
            drgn.SymbolKind.FUNC
            if lower == "t"
            else drgn.SymbolKind.OBJECT
            if lower in "dbrgsv"
            else drgn.SymbolKind.UNKNOWN
        )
        syms.append(drgn.Symbol(name, a, nxt[a] - a, binding, kind))
    return drgn.SymbolIndex(syms)


def from_system_map(path: str, prog: drgn.Program, vmcoreinfo: dict[str, str]) -> tuple[KernelSymbols | None, str]:
    """The map relocated by KERNELOFFSET and verified, or (None, one-line reason it was refused)."""
    try:
        raw = parse_system_map(path)
    except OSError as e:
        return None, f"System.map {path}: unreadable ({e.strerror})"
    if len(raw) < 100:
        return None, (
            f"System.map {path}: {len(raw)} symbol(s), a placeholder (Debian ships the real one in the "
            f"linux-image-<release>-dbg package, as /usr/lib/debug/boot/System.map-<release>)"
        )
    by_name = {n: a for a, _, n in raw}
    text = by_name.get("_text", by_name.get("_stext"))
    if text is None:
        return None, f"System.map {path}: no _text/_stext, not a kernel's System.map"
    slide = int(vmcoreinfo.get("KERNELOFFSET", "0"), 16)
    # per-CPU symbols (x86_64: offsets from 0) are not relocated; everything from _text on moves with KASLR
    moved = [(a + slide if a >= text else a, t, n) for a, t, n in raw if t not in "aAUNw"]
    table = {n: a for a, _, n in moved}
    every: dict[str, set[int]] = {}
    for a, _, n in moved:
        every.setdefault(n, set()).add(a)
    why = verify(table.get, prog, vmcoreinfo, lambda n: every.get(n, set()))
    if why:
        return None, f"System.map {path} refused: another build ({why})"
    compared = ", ".join(sorted(n for n in image_symbols(vmcoreinfo) if n in table))
    return (
        KernelSymbols(
            _index(moved),
            f"symbols from System.map {path} ({len(moved)} symbols, KASLR offset {slide:#x} from VMCOREINFO; "
            f"checked against VMCOREINFO's {compared} and linux_banner)",
            f"System.map {os.path.basename(path)}",
        ),
        "",
    )


def from_memory(prog: drgn.Program, vmcoreinfo: dict[str, str]) -> tuple[KernelSymbols | None, str]:
    """The kernel's kallsyms tables found in the dump, decoded by drgn and verified."""
    import drgn.helpers.linux.kallsyms as drgn_kallsyms

    # the loader behind load_vmlinux_kallsyms, which takes the tables' addresses from VMCOREINFO (6.0+)
    load: Callable[..., drgn.SymbolIndex] = getattr(drgn_kallsyms, "_linux_helper_load_builtin_kallsyms")
    stext = image_symbols(vmcoreinfo).get("_stext")
    if stext is None:
        return None, "kallsyms tables not searched: VMCOREINFO names no _stext"
    try:
        t = find_tables(prog, stext)
    except KallsymsNotFound as e:
        return None, f"kallsyms tables not found in the dump's memory: {e}"
    try:
        index = load(prog, t.names, t.token_table, t.token_index, t.num_syms, t.offsets, t.relative_base, 0, stext)
    except Exception as e:  # noqa: BLE001 - drgn.FaultError, ValueError on tables that do not decode
        return None, f"kallsyms tables found at {t.token_table:#x} but not decodable: {e}"

    def lookup(name: str) -> int | None:
        found = index(prog, name, None, True)
        return found[0].address if found else None

    def lookup_all(name: str) -> set[int]:
        return {sym.address for sym in index(prog, name, None, False)}

    why = verify(lookup, prog, vmcoreinfo, lookup_all)
    if why:
        return None, f"kallsyms tables found in the dump's memory do not agree with the dump ({why})"
    return KernelSymbols(index, "symbols from the " + t.describe(), "kallsyms tables found in memory"), ""


def kernel_symbols(
    prog: drgn.Program, vmcoreinfo: dict[str, str], given: list[str]
) -> tuple[KernelSymbols | None, list[str]]:
    """The first source that agrees with the dump, and the notes of the ones refused before it."""
    notes: list[str] = []
    for p in given:
        if is_system_map(p) and not os.path.exists(p):
            notes.append(f"System.map {p}: no such file")
    for path in system_map_candidates(given, vmcoreinfo.get("OSRELEASE", "")):
        got, why = from_system_map(path, prog, vmcoreinfo)
        if got:
            got.notes = notes
            return got, notes
        notes.append(why)
    got, why = from_memory(prog, vmcoreinfo)
    if got:
        got.notes = notes
        return got, notes
    notes.append(why)
    return None, notes
