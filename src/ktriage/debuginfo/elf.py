"""The few ELF facts the debug-info search needs before handing a file to drgn.

Only the ELF header, section headers, the symbol table and notes are read here (no DWARF: drgn
does that). They answer: is this a vmlinux or a module, what is its build ID, what release does its
`linux_banner` say, where are its allocated sections (to place a relocatable .ko at an address and to
serve its bytes to drgn/capstone), does it carry DWARF at all (a stripped file must be refused with a
reason, not half-used).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from functools import cached_property

MACHINES = {62: "x86_64", 3: "i386", 183: "arm64", 40: "arm", 243: "riscv64", 21: "ppc64", 22: "s390x"}
SHF_ALLOC = 0x2
SHT_NOBITS = 8
SHT_SYMTAB = 2
SHT_NOTE = 7
ET_REL = 1


_CACHE: dict[tuple, "ElfFile"] = {}


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

    @classmethod
    def open(cls, path: str) -> "ElfFile":
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
        self._parse()
        return self

    def close(self) -> None:
        m = getattr(self, "_m", None)
        if m is not None:
            m.close()
            self._m = None

    def _parse(self) -> None:
        d = self._m
        if d[:4] != b"\x7fELF":
            raise ElfError(f"{self.path}: not an ELF file")
        self.is64, self.little = d[4] == 2, d[5] == 1
        e = "<" if self.little else ">"
        self._e = e
        try:
            self.etype, machine = struct.unpack_from(e + "HH", d, 16)
            if self.is64:
                shoff, = struct.unpack_from(e + "Q", d, 0x28)
                shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", d, 0x3A)
                fmt = e + "IIQQQQIIQQ"
            else:
                shoff, = struct.unpack_from(e + "I", d, 0x20)
                shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", d, 0x2E)
                fmt = e + "IIIIIIIIII"
            raw = [struct.unpack_from(fmt, d, shoff + i * shentsize) for i in range(shnum)]
        except struct.error:
            raise ElfError(f"{self.path}: truncated ELF headers") from None
        self.machine = MACHINES.get(machine, f"machine {machine}")
        self._raw = raw
        strs = raw[shstrndx] if shstrndx < len(raw) else None
        for s in raw:
            name = self._str(strs[4], s[0]) if strs else ""
            self.sections.append(Section(name, s[1], s[2], s[3], s[4], s[5], s[8]))

    def _str(self, base: int, off: int) -> str:
        d = self._m
        end = d.find(b"\0", base + off)
        return d[base + off:end].decode("ascii", "replace")

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def bytes_at(self, sec: Section, off: int = 0, size: int | None = None) -> bytes:
        if sec.type == SHT_NOBITS:
            return bytes(size if size is not None else sec.size)
        size = sec.size - off if size is None else size
        return bytes(self._m[sec.offset + off:sec.offset + off + size])

    @property
    def has_dwarf(self) -> bool:
        return any(s.name in (".debug_info", ".zdebug_info") and s.size > 0 for s in self.sections)

    @property
    def has_symtab(self) -> bool:
        return any(s.type == SHT_SYMTAB for s in self.sections)

    @cached_property
    def build_id(self) -> str | None:
        for s in self.sections:
            if s.type != SHT_NOTE:
                continue
            data, e, o = self.bytes_at(s), self._e, 0
            while o + 12 <= len(data):
                namesz, descsz, ntype = struct.unpack_from(e + "III", data, o)
                name = data[o + 12:o + 12 + namesz].rstrip(b"\0")
                o2 = o + 12 + ((namesz + 3) & ~3)
                desc = data[o2:o2 + descsz]
                o = o2 + ((descsz + 3) & ~3)
                if ntype == 3 and name == b"GNU":
                    return desc.hex()
        return None

    @cached_property
    def _symtab(self) -> dict[bytes, tuple[int, int, int]]:
        """Every defined symbol: name -> (value, size, section index), first definition wins (read once)."""
        out: dict[bytes, tuple[int, int, int]] = {}
        d, e = self._m, self._e
        fmt = e + ("IBBHQQ" if self.is64 else "IIIBBH")
        for sec in self._raw:
            if sec[1] != SHT_SYMTAB:
                continue
            off, size, link, entsize = sec[4], sec[5], sec[6], sec[9]
            strtab = self._raw[link][4]
            for i in range(size // entsize if entsize else 0):
                if self.is64:
                    st_name, info, _, shndx, value, ssize = struct.unpack_from(fmt, d, off + i * entsize)
                else:
                    st_name, value, ssize, info, _, shndx = struct.unpack_from(fmt, d, off + i * entsize)
                if shndx == 0 or not st_name:
                    continue
                s0 = strtab + st_name
                name = bytes(d[s0:d.find(b"\0", s0)])
                if name not in out:
                    out[name] = (value, ssize, shndx)
        return out

    def symbols(self, names: set[str]) -> dict[str, tuple[int, int, int]]:
        """name -> (value, size, section index) for the wanted names."""
        tab = self._symtab
        return {n: tab[n.encode()] for n in names if n.encode() in tab}

    @classmethod
    def cached(cls, path: str) -> "ElfFile":
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
