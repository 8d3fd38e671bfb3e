"""The few ELF facts the debug-info search needs before handing a file to drgn.

Only the ELF header, section headers, the symbol table and notes are read here (no DWARF: drgn
does that). They answer: is this a vmlinux or a module, what is its build ID, what release does its
`linux_banner` say, where are its allocated sections (to place a relocatable .ko at an address and to
serve its bytes to drgn/capstone), does it carry DWARF at all (a stripped file must be refused with a
reason, not half-used).

Headers, sections and notes are read with pyelftools. Symbols of a vmlinux (~100k of them) are looked
up through drgn, whose C symbol table answers in milliseconds where pyelftools' name index costs
~1.5 s of pure Python; a relocatable .ko (a few hundred symbols, section-relative values) uses pyelftools.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any, cast

MACHINES = {62: "x86_64", 3: "i386", 183: "arm64", 40: "arm", 243: "riscv64", 21: "ppc64", 22: "s390x"}
SHF_ALLOC = 0x2
SHT_NOBITS = 8
SHT_SYMTAB = 2
SHT_NOTE = 7
ET_REL = 1
SHN_ABS = 0xFFF1


def _enums():
    """pyelftools' enum tables, imported when a file is first opened (pyelftools costs ~25 ms to import,
    and a vmcore whose debug info drgn matched never opens one)."""
    from elftools.elf import enums

    return enums


def _sh_types(e_machine: Any) -> dict:
    """pyelftools decodes header enums to names ("SHT_NOBITS", "EM_X86_64"); callers compare numbers."""
    e = _enums()
    return {
        "EM_ARM": e.ENUM_SH_TYPE_ARM,
        "EM_AARCH64": e.ENUM_SH_TYPE_AARCH64,
        "EM_X86_64": e.ENUM_SH_TYPE_AMD64,
        "EM_MIPS": e.ENUM_SH_TYPE_MIPS,
        "EM_RISCV": e.ENUM_SH_TYPE_RISCV,
    }.get(e_machine, e.ENUM_SH_TYPE_BASE)


_DRGN_ARCH = {
    "x86_64": "X86_64",
    "i386": "I386",
    "arm64": "AARCH64",
    "arm": "ARM",
    "riscv64": "RISCV64",
    "ppc64": "PPC64",
    "s390x": "S390X",
}


def _num(value: Any, names: dict) -> int:
    """A header field as its number: pyelftools gives the enum name when it knows the value."""
    return value if isinstance(value, int) else names[value]


_CACHE: dict[tuple, ElfFile] = {}


class ElfError(Exception):
    """Not an ELF file, or one too damaged to read its headers."""


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    align: int

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)


@dataclass
class ElfFile:
    path: str
    sections: list[Section] = field(default_factory=list)
    machine: str = ""
    etype: int = 0
    little: bool = True
    is64: bool = True
    _m: mmap.mmap | None = field(default=None, repr=False)
    _elf: Any = field(default=None, repr=False)  # elftools.elf.elffile.ELFFile, opened by _parse
    _shared: bool = field(default=False, repr=False)  # held by the cache: close() is the cache's business
    # name look-ups asked again (the log check, then the source analysis, ask for the same frames' functions):
    # drgn's symbol table has no name index, each first look-up scans it (~0.7 ms on a distribution vmlinux)
    _looked: dict[tuple[str, bool], tuple[int, int, int] | None] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str) -> ElfFile:
        try:
            f = open(path, "rb")
        except OSError as e:
            raise ElfError(f"{path}: {e.strerror}") from None
        with f:
            try:
                size = os.fstat(f.fileno()).st_size
                if size < 64:
                    raise ElfError(f"{path}: not an ELF file")
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as e:
                raise ElfError(f"{path}: {e}") from None
        self = cls(path)
        self._m = m
        try:
            self._parse()
        except Exception:
            m.close()
            raise
        return self

    def close(self) -> None:
        m = getattr(self, "_m", None)
        if m is not None:
            m.close()
            self._m = None

    def _parse(self) -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        try:
            assert self._m is not None
            elf = ELFFile(cast(IO[bytes], self._m))  # an mmap has the read/seek/tell pyelftools uses
            hdr = elf.header
            sections = [(sec.name, sec.header) for sec in elf.iter_sections()]
        except ELFError as e:
            if "magic" in str(e).lower():
                raise ElfError(f"{self.path}: not an ELF file") from None
            raise ElfError(f"{self.path}: truncated ELF headers") from None
        except Exception:  # construct's stream/parse errors on a cut file
            raise ElfError(f"{self.path}: truncated ELF headers") from None
        self._elf = elf
        self.is64, self.little = elf.elfclass == 64, elf.little_endian
        self.etype = _num(hdr["e_type"], _enums().ENUM_E_TYPE)
        self.e_machine = _num(hdr["e_machine"], _enums().ENUM_E_MACHINE)
        self.machine = MACHINES.get(self.e_machine, f"machine {self.e_machine}")
        types = _sh_types(hdr["e_machine"])
        for name, h in sections:
            self.sections.append(
                Section(
                    name,
                    _num(h["sh_type"], types),
                    h["sh_flags"],
                    h["sh_addr"],
                    h["sh_offset"],
                    h["sh_size"],
                    h["sh_addralign"],
                )
            )

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def bytes_at(self, sec: Section, off: int = 0, size: int | None = None) -> bytes:
        if sec.type == SHT_NOBITS:
            return bytes(size if size is not None else sec.size)
        size = sec.size - off if size is None else size
        assert self._m is not None, "read after close()"
        return bytes(self._m[sec.offset + off : sec.offset + off + size])

    @property
    def has_dwarf(self) -> bool:
        return any(s.name in (".debug_info", ".zdebug_info") and s.size > 0 for s in self.sections)

    @property
    def has_symtab(self) -> bool:
        return any(s.type == SHT_SYMTAB for s in self.sections)

    @cached_property
    def build_id(self) -> str | None:
        for i, s in enumerate(self.sections):
            if s.type != SHT_NOTE:
                continue
            try:
                for note in self._elf.get_section(i).iter_notes():
                    if note["n_type"] in ("NT_GNU_BUILD_ID", 3) and note["n_name"] == "GNU":
                        desc = note["n_desc"]
                        return desc if isinstance(desc, str) else bytes(desc).hex()
            except Exception:  # a malformed note section: no build ID from it, as before
                continue
        return None

    @cached_property
    def _symtabs(self) -> list[Any]:
        """The SHT_SYMTAB sections, kept so that pyelftools' name index is built once per file."""
        from elftools.elf.sections import SymbolTableSection

        return [
            sec
            for sec in (self._elf.get_section(i) for i, s in enumerate(self.sections) if s.type == SHT_SYMTAB)
            if isinstance(sec, SymbolTableSection)
        ]

    @cached_property
    def _drgn(self) -> tuple[Any, int] | None:
        """(drgn.Program holding only this file's symbol table, load bias) for a vmlinux, else None.

        The file is an "extra module" spanning the whole address space: drgn reads its .symtab in C
        (a few ms for ~100k symbols) and reports addresses shifted by the load bias. Works without
        DWARF (a stripped vmlinux still has .symtab). None (pyelftools is used) for a .ko, without drgn,
        or when drgn refuses the file.
        """
        arch = _DRGN_ARCH.get(self.machine)
        if self.etype == ET_REL or arch is None:
            return None
        try:
            import drgn

            flags = drgn.PlatformFlags(0)
            if self.is64:
                flags |= drgn.PlatformFlags.IS_64_BIT
            if self.little:
                flags |= drgn.PlatformFlags.IS_LITTLE_ENDIAN
            prog = drgn.Program(drgn.Platform(getattr(drgn.Architecture, arch), flags))
            prog.set_enabled_debug_info_finders([])
            mod = prog.extra_module(self.path, 0, create=True)
            mod.address_range = (0, (1 << 64) - 1)
            mod.try_file(self.path, force=True)
            if mod.loaded_file_status != drgn.ModuleFileStatus.HAVE:
                return None
            return prog, mod.loaded_file_bias or 0
        except Exception:  # ImportError (drgn is Linux-only), or a file drgn cannot take
            return None

    def _shndx(self, address: int) -> int:
        """Index of the allocated section holding `address` (SHN_ABS if none).

        drgn gives a symbol's address, not its st_shndx: the section is the one whose range contains
        the address, else an empty section starting there, else one ending there (a zero-size end
        marker such as __per_cpu_end).
        """
        start = end = None
        for i, s in enumerate(self.sections):
            if not s.alloc:
                continue
            if s.addr <= address < s.addr + s.size:
                return i
            if start is None and s.size == 0 and s.addr == address:
                start = i
            if end is None and address == s.addr + s.size:
                end = i
        hit = start if start is not None else end
        return SHN_ABS if hit is None else hit

    def _lookup(self, name: str, func: bool = False) -> tuple[int, int, int] | None:
        """(value, size, section index) of the first defined symbol `name` (only STT_FUNC if `func`)."""
        key = (name, func)
        if key not in self._looked:
            self._looked[key] = self._lookup_uncached(name, func)
        return self._looked[key]

    def _lookup_uncached(self, name: str, func: bool) -> tuple[int, int, int] | None:
        d = self._drgn
        if d is not None:
            import drgn

            prog, bias = d
            mask = (1 << (64 if self.is64 else 32)) - 1
            for sym in prog.symbols(name):  # in .symtab order, undefined symbols left out
                if func and sym.kind != drgn.SymbolKind.FUNC:
                    continue
                value = (sym.address - bias) & mask
                if sym.kind == drgn.SymbolKind.FILE:  # STT_FILE is always SHN_ABS
                    return value, sym.size, SHN_ABS
                return value, sym.size, self._shndx(value)
            return None
        for tab in self._symtabs:
            for sym in tab.get_symbol_by_name(name) or ():
                shndx = _num(sym["st_shndx"], _enums().ENUM_ST_SHNDX)
                if shndx == 0 or (func and sym["st_info"]["type"] != "STT_FUNC"):
                    continue
                return sym["st_value"], sym["st_size"], shndx
        return None

    def symbols(self, names: set[str]) -> dict[str, tuple[int, int, int]]:
        """name -> (value, size, section index) for the wanted names."""
        out = {}
        for n in names:
            hit = self._lookup(n)
            if hit is not None:
                out[n] = hit
        return out

    @classmethod
    def cached(cls, path: str) -> ElfFile:
        """A shared, still-open ElfFile per (path, mtime, size): a log of many crashes reads a vmlinux once."""
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
        hit = _CACHE.get(key)
        if hit is None:
            hit = cls.open(path)
            hit._shared = True
            if len(_CACHE) >= 8:  # dropped, not closed: a session may still read it (the mmap goes with the object)
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = hit
        return hit

    def release(self) -> None:
        """close() unless shared through cached()."""
        if not getattr(self, "_shared", False):
            self.close()

    def read_symbol(self, name: str, size: int | None = None) -> bytes | None:
        """Bytes of a data symbol (vmlinux: by address; .ko: section-relative)."""
        hit = self.symbols({name}).get(name)
        if hit is None:
            return None
        value, ssize, shndx = hit
        if shndx >= len(self.sections):
            return None
        sec = self.sections[shndx]
        off = value if self.etype == ET_REL else value - sec.addr
        n = size or ssize
        if not (0 <= off and off + n <= sec.size):
            return None
        return self.bytes_at(sec, off, n)

    def banner(self) -> str | None:
        """`linux_banner` ("Linux version 6.1.192 (...) #1 SMP ...") of a vmlinux."""
        raw = self.read_symbol("linux_banner")
        if raw is None:
            return None
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()

    def modinfo(self) -> dict[str, str]:
        """A .ko's .modinfo (vermagic, name, srcversion...)."""
        sec = self.section(".modinfo")
        out: dict[str, str] = {}
        if sec is None:
            return out
        for item in self.bytes_at(sec).split(b"\0"):
            k, sep, v = item.decode("utf-8", "replace").partition("=")
            if sep and k not in out:
                out[k] = v
        return out

    def module_name(self) -> str | None:
        """A .ko's name from .gnu.linkonce.this_module (struct module.name at offset 0x18 on 64-bit)."""
        mi = self.modinfo()
        if mi.get("name"):
            return mi["name"]
        sec = self.section(".gnu.linkonce.this_module")
        if sec is None or sec.size < 0x18 + 56:
            return None
        return self.bytes_at(sec, 0x18, 56).split(b"\0", 1)[0].decode("ascii", "replace") or None
