"""A drgn Program over the crashed kernel's debug files, without a vmcore.

The vmlinux is loaded at its link address (drgn's Linux-kernel mode with a minimal VMCOREINFO,
KERNELOFFSET=0); each module .ko is placed by ktriage at a synthetic address, section by section
(drgn's RelocatableModule.section_addresses, as it does from `struct module` in a vmcore). Addresses
are therefore *debug-file* addresses, computed from the oops' `func+off`: KASLR and module load
addresses do not matter (faddr2line semantics).

Everything DWARF (lines, inline chains, types, variable locations) is drgn's; the code bytes come
from the files' sections (module code is unrelocated: call targets and RIP-relative data in a .ko
read as 0 / self-relative).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktriage.debuginfo.elf import ET_REL, SHT_NOBITS, ElfFile
from ktriage.debuginfo.find import Search, norm_mod

MODULE_BASE = 0xFFFFFFFFC0000000
_PT_REGS = {
    "r15": "R15",
    "r14": "R14",
    "r13": "R13",
    "r12": "R12",
    "bp": "RBP",
    "bx": "RBX",
    "r11": "R11",
    "r10": "R10",
    "r9": "R09",
    "r8": "R08",
    "ax": "RAX",
    "cx": "RCX",
    "dx": "RDX",
    "si": "RSI",
    "di": "RDI",
    "sp": "RSP",
    "flags": "EFLAGS",
    "ss": "SS",
    "cs": "CS",
}
# arm64 `struct pt_regs` starts with user_pt_regs: x0..x30, sp, pc, pstate (arch/arm64/include/asm/ptrace.h);
# drgn reads those 34 words by layout. The oops dump names them x0..x29, sp, pstate (x30 is `lr : sym+off`).
_PT_REGS_ARM64 = tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "pstate")


@dataclass(frozen=True)
class _Sym:
    """What callers of DebugInfo.function read of a drgn Symbol."""

    name: str
    address: int
    size: int


@dataclass(frozen=True)
class SrcLoc:
    function: str
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.function} at {self.file}:{self.line}" + (f":{self.column}" if self.column else "")


@dataclass
class _Mod:
    name: str
    path: str
    elf: ElfFile
    sections: dict[str, int]  # section name -> address
    lo: int
    hi: int


class DebugInfo:
    """The session analyzers get as `ctx.debuginfo`. `ok` is False when no usable file was found;
    `search` always says where ktriage looked and what it refused."""

    def __init__(self, search: Search, src_dirs: list[str] | None = None) -> None:
        self.search = search
        self.src_dirs = list(src_dirs or [])
        self.prog: Any = None
        self.kernel: ElfFile | None = None
        self.modules: dict[str, _Mod] = {}
        self.error: str | None = None
        self._regs_type: Any = None
        if search.vmlinux or search.modules:
            try:
                self._load()
            except Exception as e:  # drgn refusing a file must not cost the log-only report
                self.error = f"drgn could not load the debug info: {type(e).__name__}: {e}"
                self.prog = None

    @property
    def ok(self) -> bool:
        return self.prog is not None

    # --- loading ----------------------------------------------------------------------------

    def _load(self) -> None:
        import drgn

        swapper = 0xFFFFFFFF82000000
        extra = ""
        if self.search.vmlinux:
            self.kernel = ElfFile.cached(self.search.vmlinux)
            syms = self.kernel.symbols({"init_top_pgt", "swapper_pg_dir", "_text"})
            hit = syms.get("init_top_pgt") or syms.get("swapper_pg_dir")
            if hit:
                swapper = hit[0]
            if self.kernel.machine == "arm64":
                # drgn's aarch64 Linux support refuses a VMCOREINFO without VA_BITS (it sizes the page tables
                # with it; nothing here reads memory). The image is linked at _PAGE_END(VA_BITS_MIN) + 128M
                # (0xffff800008000000 for 48/52 bits, 0xffffffc008000000 for 39): its leading one bits say it.
                text = (syms.get("_text") or (0xFFFF800008000000,))[0]
                ones = 64 - (~text & 0xFFFFFFFFFFFFFFFF).bit_length()
                extra = f"NUMBER(VA_BITS)={65 - ones if 16 <= ones <= 28 else 48}\n"
        elif any(ElfFile.cached(p).machine == "arm64" for p in self.search.modules.values()):
            extra = "NUMBER(VA_BITS)=48\n"
        arch = self.kernel.machine if self.kernel else "x86_64"
        if not self.kernel and extra:
            arch = "arm64"
        plat = {"x86_64": drgn.Architecture.X86_64, "arm64": drgn.Architecture.AARCH64}.get(arch)
        if plat is None:
            raise RuntimeError(f"no drgn platform for {arch}")
        prog = drgn.Program(drgn.Platform(plat, drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
        prog.set_enabled_debug_info_finders([])
        rel = self.search.release or "0.0.0"
        from ktriage.drgn_plugins import without_drgn_command_plugins

        with without_drgn_command_plugins():  # why: see ktriage.drgn_plugins (~75 ms)
            prog.set_linux_kernel_custom(
                f"OSRELEASE={rel}\nPAGESIZE=4096\nKERNELOFFSET=0\nSYMBOL(swapper_pg_dir)={swapper:x}\n{extra}", False
            )
        if self.kernel:
            main = prog.main_module("kernel", create=True)
            main.try_file(self.search.vmlinux, force=True)
            if main.debug_file_status != drgn.ModuleFileStatus.HAVE:
                raise RuntimeError(f"drgn did not take {self.search.vmlinux} as the kernel's debug file")
        base = MODULE_BASE
        for name, path in self.search.modules.items():
            elf = ElfFile.cached(path)
            mod = prog.relocatable_module(name, base, create=True)
            addr, secs = base, {}
            for s in elf.sections:
                if s.alloc and s.size:
                    al = max(s.align, 1)
                    addr = (addr + al - 1) // al * al
                    secs[s.name] = addr
                    mod.section_addresses[s.name] = addr
                    addr += s.size
            hi = (addr + 0xFFFF) & ~0xFFFF
            mod.address_range = (base, hi)
            mod.try_file(path, force=True)
            if mod.debug_file_status != drgn.ModuleFileStatus.HAVE:
                raise RuntimeError(f"drgn did not take {path} as {name}'s debug file")
            self.modules[name] = _Mod(name, path, elf, secs, base, hi)
            base = hi + 0x100000
        self.prog = prog

    # --- what the other analyzers use --------------------------------------------------------

    def object_for(self, module: str | None) -> str | None:
        """The verified file of `module` (None: vmlinux), for code bytes (insn.objcode)."""
        if module is None:
            return self.search.vmlinux
        m = self.modules.get(norm_mod(module))
        return m.path if m else None

    def has(self, module: str | None) -> bool:
        return (self.kernel is not None) if module is None else norm_mod(module) in self.modules

    # --- addresses ---------------------------------------------------------------------------

    def function(self, symbol: str, module: str | None) -> Any:
        """drgn Symbol of `symbol` in vmlinux or in `module` (local names repeat across objects); for vmlinux
        (linked where this program loads it) its address and size from the file's own, remembered look-up."""
        if not self.ok or not self.has(module):
            return None
        if module is None and self.kernel is not None and self.kernel.etype != ET_REL:
            hit = self.kernel.symbols({symbol}).get(symbol)
            return None if hit is None or hit[0] >= MODULE_BASE else _Sym(symbol, hit[0], hit[1])
        try:
            cands = self.prog.symbols(symbol)
        except (LookupError, ValueError):
            return None
        m = self.modules.get(norm_mod(module)) if module else None
        for s in cands:
            inside = m.lo <= s.address < m.hi if m else s.address < MODULE_BASE
            if inside:
                return s
        return None

    def address(self, symbol: str, offset: int, module: str | None) -> int | None:
        s = self.function(symbol, module)
        return None if s is None else s.address + offset

    def file_location(self, address: int) -> tuple[str, str | None, int]:
        """(file, section or None, address to give addr2line: section offset for a .ko, address for vmlinux)."""
        for m in self.modules.values():
            if m.lo <= address < m.hi:
                best = max(((n, a) for n, a in m.sections.items() if a <= address), key=lambda x: x[1])
                return m.path, best[0], address - best[1]
        return self.search.vmlinux or "", None, address

    def locate(self, address: int) -> list[SrcLoc]:
        """The inline chain at `address`, innermost first (addr2line -i)."""
        try:
            locs = self.prog.source_location(address)
        except (LookupError, ValueError):
            return []
        out = []
        for loc in locs:  # drgn 0.3.0 exposes the function name only through str(): "fn at file:line:col"
            text, tail = str(loc), f" at {loc.filename}:{loc.line}"
            name = text[: text.index(tail)] if tail in text else text.split(" at ")[0]
            if not name or name.strip("?") == "":  # line table entry outside any DWARF subprogram (padding)
                try:
                    name = self.prog.symbol(address).name  # what addr2line prints: the ELF symbol
                except (LookupError, ValueError):
                    name = "??"
            out.append(SrcLoc(name, loc.filename or "??", loc.line, loc.column))
        return out

    def read_code(self, address: int, size: int) -> bytes | None:
        """Bytes of the debug file at a debug-file address (None if not in a PROGBITS section)."""
        for m in self.modules.values():
            if m.lo <= address < m.hi:
                for s in m.elf.sections:
                    a = m.sections.get(s.name)
                    if a is not None and a <= address and address + size <= a + s.size:
                        return None if s.type == SHT_NOBITS else m.elf.bytes_at(s, address - a, size)
                return None
        if self.kernel:
            for s in self.kernel.sections:
                if s.alloc and s.addr and s.addr <= address and address + size <= s.addr + s.size:
                    return None if s.type == SHT_NOBITS else self.kernel.bytes_at(s, address - s.addr, size)
        return None

    # --- source text -------------------------------------------------------------------------

    def source_line(self, file: str, line: int) -> str | None:
        """The text of file:line from --src dirs (or the path in the DWARF if it exists)."""
        p = self.source_path(file)
        if p is None:
            return None
        try:
            with open(p, "rb") as f:
                for n, raw in enumerate(f, 1):
                    if n == line:
                        return raw.decode("utf-8", "replace").rstrip("\n")
        except OSError:
            return None
        return None

    def source_path(self, file: str) -> str | None:
        cache = self.__dict__.setdefault("_src_cache", {})
        if file in cache:
            return cache[file]
        found = None
        if os.path.isabs(file) and os.path.isfile(file) and self.src_dirs:
            found = file
        parts = Path(file).parts
        for d in self.src_dirs:
            if found:
                break
            for k in range(len(parts)):  # relative path, or an absolute build path re-rooted under --src
                tail = parts[k:] if not (k == 0 and os.path.isabs(file)) else parts[1:]
                if not tail:
                    continue
                cand = Path(d, *tail)
                if cand.is_file():
                    found = str(cand)
                    break
        cache[file] = found
        return found

    # --- registers and variables -------------------------------------------------------------

    @property
    def machine(self) -> str | None:
        """ "x86_64" / "arm64" of the loaded files (vmlinux first, else the first module)."""
        if self.kernel is not None:
            return self.kernel.machine
        return next((m.elf.machine for m in self.modules.values()), None)

    def frame_at(self, pc: int, regs: dict[str, int]) -> Any:
        """drgn StackTrace whose first frame is at `pc` with the oops registers (`struct pt_regs` of
        x86_64: dump names RAX..R15; arm64: x0..x30, sp, pstate)."""
        import drgn

        machine = self.machine
        if not self.ok or machine not in ("x86_64", "arm64"):
            return None
        if self._regs_type is None:
            self._regs_type = self._pt_regs_type(machine)
        if machine == "arm64":
            val = {k: (regs.get(k) or 0) & 0xFFFFFFFFFFFFFFFF for k in _PT_REGS_ARM64}
            val["pc"] = pc
        else:
            val = {k: (regs.get(v) or 0) & 0xFFFFFFFFFFFFFFFF for k, v in _PT_REGS.items()}
            val["ip"] = pc
        return self.prog.stack_trace(drgn.Object(self.prog, self._regs_type, value=val))

    def _pt_regs_type(self, machine: str = "x86_64") -> Any:
        """`struct pt_regs` for frame_at, built from its fixed x86_64/arm64 layout instead of looked up.

        Why: a type lookup by name makes drgn index all of vmlinux's DWARF (~60 ms) although frame_at
        needs no other named type (locals are found from the DIEs at the pc). drgn reads the
        registers out of a `struct pt_regs` object by the fixed kernel layout below (it only checks
        the tag and the size), so the synthesized type gives the same unwind. Falls back to the
        DWARF type if drgn refuses to build it.
        """
        import drgn

        names: tuple[str, ...] = (
            "r15",
            "r14",
            "r13",
            "r12",
            "bp",
            "bx",
            "r11",
            "r10",
            "r9",
            "r8",
            "ax",
            "cx",
            "dx",
            "si",
            "di",
            "orig_ax",
            "ip",
            "cs",
            "flags",
            "sp",
            "ss",
        )
        if machine == "arm64":  # only the user_pt_regs head: drgn reads no further (orig_x0... are not registers)
            names = _PT_REGS_ARM64
        try:
            ul = self.prog.int_type("unsigned long", 8, False)
            return self.prog.struct_type(
                "pt_regs", 8 * len(names), [drgn.TypeMember(ul, n, 64 * i) for i, n in enumerate(names)]
            )
        except Exception:  # noqa: BLE001
            return self.prog.type("struct pt_regs")
