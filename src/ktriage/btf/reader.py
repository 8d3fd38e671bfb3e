"""The BTF format (include/uapi/linux/btf.h), read from the bytes the kernel keeps in memory.

A vmcore carries the kernel's BTF between the kallsyms symbols `__start_BTF` and `__stop_BTF`, and each
loaded module's split BTF behind `struct module.btf_data`. No maintained Python parser exists, and the
format is small: a header, type records of 19 kinds, a string table. This module only decodes records;
ktriage.btf.drgn_types turns them into drgn types.

One pass records where each type starts (type ids are positions) and indexes named types by name;
members, parameters and enumerators are decoded only when a type is asked for.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass

MAGIC = 0xEB9F

# kinds (BTF_KIND_*)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
KIND_NAMES = {
    INT: "int",
    PTR: "ptr",
    ARRAY: "array",
    STRUCT: "struct",
    UNION: "union",
    ENUM: "enum",
    FWD: "fwd",
    TYPEDEF: "typedef",
    VOLATILE: "volatile",
    CONST: "const",
    RESTRICT: "restrict",
    FUNC: "func",
    FUNC_PROTO: "func_proto",
    VAR: "var",
    DATASEC: "datasec",
    FLOAT: "float",
    DECL_TAG: "decl_tag",
    TYPE_TAG: "type_tag",
    ENUM64: "enum64",
}

# bytes after the 12-byte common record: fixed part, then per-vlen part
_EXTRA_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_EXTRA_PER_VLEN = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}
# kinds whose name is worth indexing (looked up by C name)
_NAMED = frozenset({INT, STRUCT, UNION, ENUM, FWD, TYPEDEF, FUNC, VAR, DATASEC, FLOAT, ENUM64})

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


class BTFError(ValueError):
    """The bytes are not BTF, or a record runs past the end."""


@dataclass(frozen=True)
class Record:
    """One type record, decoded. `ref` is the referenced type id (PTR, TYPEDEF, qualifiers, FUNC, VAR, ARRAY
    element, FUNC_PROTO return); `size` is the byte size for sized kinds."""

    id: int
    kind: int
    name: str
    vlen: int
    kind_flag: bool
    size: int = 0
    ref: int = 0

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


CACHED_SCAN_BYTES = 1 << 20  # a kernel's own BTF (MBs) is indexed through the cache; a module's (KBs) is not


class BTF:
    """A parsed BTF blob. Split BTF (a module's) is given its `base`: its ids and string offsets continue the
    base's numbering, and look-ups fall through to the base."""

    next_id: int  # the first type id after this blob's (a split BTF on top of it starts there)
    str_end: int  # the string offset after this blob's strings

    def __init__(self, data: bytes, base: BTF | None = None, name: str = "vmlinux") -> None:
        if len(data) < 24:
            raise BTFError(f"{name}: {len(data)} bytes, too short for a BTF header")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic == 0x9FEB:
            raise BTFError(f"{name}: big-endian BTF (s390x, ppc64): not supported")
        if magic != MAGIC:
            raise BTFError(f"{name}: not BTF (magic {magic:#x})")
        if version != 1:
            raise BTFError(f"{name}: BTF version {version} is not supported")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        end = len(data)
        if hdr_len + type_off + type_len > end or hdr_len + str_off + str_len > end:
            raise BTFError(f"{name}: BTF sections run past the end of the blob ({end} bytes)")
        self.name = name
        self.base = base
        self.data = memoryview(data)
        self._types = hdr_len + type_off
        self._types_end = self._types + type_len
        self._strs = bytes(data[hdr_len + str_off : hdr_len + str_off + str_len])
        self.first_id = base.next_id if base else 1
        self.str_base = base.str_end if base else 0
        self.str_end = self.str_base + len(self._strs)
        self._offsets = array("I")
        self.by_name: dict[str, list[int]] = {}
        self.enum_ids = array("I")  # enumerators are looked up by name (drgn's constants): scan only these
        if base is None and len(data) >= CACHED_SCAN_BYTES:
            self._scan_cached()
        else:
            self._scan()
        self.next_id = self.first_id + len(self._offsets)

    # --- strings and records -------------------------------------------------------------------------------

    def string(self, off: int) -> str:
        if off < self.str_base:
            return self.base.string(off) if self.base else ""
        off -= self.str_base
        end = self._strs.find(b"\0", off)
        return self._strs[off : end if end >= 0 else None].decode("utf-8", "replace")

    def _scan_cached(self) -> None:
        """_scan's result from ktriage's per-user cache (ktriage.diskcache), keyed by the blob's hash.

        Why: the scan is ~0.12 s of Python for a distribution kernel's 100k records, and it runs on the
        thread that opens the dump while the main thread imports, so it also holds the GIL against them.
        Every dump of one kernel build carries the same BTF: hashing it (5 ms) and loading the index (20 ms)
        replaces the scan from the second report of that build on."""
        import hashlib

        from ktriage import diskcache

        def scan() -> tuple[bytes, dict[str, list[int]], bytes]:
            self._scan()
            return self._offsets.tobytes(), self.by_name, self.enum_ids.tobytes()

        digest = hashlib.blake2b(self.data).hexdigest()
        offsets, self.by_name, enum_ids = diskcache.cached(
            "btf-index", diskcache.key_of("btf-index/1", len(self.data), digest), scan
        )
        self._offsets, self.enum_ids = array("I", offsets), array("I", enum_ids)

    def _scan(self) -> None:
        # The hot loop of the tier (100k records on a distribution kernel): locals only, one unpack per record,
        # record sizes from a per-kind table, names decoded only for kinds looked up by name.
        d, pos, end = self.data, self._types, self._types_end
        unpack = struct.Struct("<II").unpack_from
        offsets, by_name, tid = self._offsets, self.by_name, self.first_id
        strs, str_base, nstrs = self._strs, self.str_base, len(self._strs)
        fixed = [12 + _EXTRA_FIXED.get(k, 0) for k in range(32)]
        per_vlen = [_EXTRA_PER_VLEN.get(k, 0) for k in range(32)]
        named = [k in _NAMED for k in range(32)]
        known = [k in KIND_NAMES for k in range(32)]
        enum_ids, append, find = self.enum_ids, offsets.append, strs.find
        base_string = self.base.string if self.base is not None else None
        while pos < end:
            if pos + 12 > end:
                raise BTFError(f"{self.name}: type record {tid} is cut short")
            name_off, info = unpack(d, pos)
            kind = (info >> 24) & 0x1F
            if not known[kind]:
                raise BTFError(f"{self.name}: type {tid} has unknown kind {kind}")
            append(pos)
            if kind == ENUM or kind == ENUM64:
                enum_ids.append(tid)
            if name_off and named[kind]:
                o = name_off - str_base
                if 0 <= o < nstrs:
                    n = strs[o : find(b"\0", o)].decode("utf-8", "replace")
                elif o < 0 and base_string is not None:  # split BTF dedup points names at the base's strings
                    n = base_string(name_off)
                else:
                    n = ""
                if n:
                    ids = by_name.get(n)
                    if ids is None:
                        by_name[n] = [tid]
                    else:
                        ids.append(tid)
            pos += fixed[kind] + per_vlen[kind] * (info & 0xFFFF)
            tid += 1
        if pos != end:
            raise BTFError(f"{self.name}: type section ends inside a record")

    def owner(self, tid: int) -> BTF:
        """The blob (this one or a base) that holds type `tid`."""
        b: BTF | None = self
        while b is not None and tid < b.first_id:
            b = b.base
        if b is None or tid >= b.next_id:
            raise BTFError(f"{self.name}: type id {tid} out of range")
        return b

    def record(self, tid: int) -> Record:
        b = self.owner(tid)
        pos = b._offsets[tid - b.first_id]
        name_off, info, size_type = struct.unpack_from("<III", b.data, pos)
        kind = (info >> 24) & 0x1F
        sized = kind in (INT, STRUCT, UNION, ENUM, DATASEC, FLOAT, ENUM64)
        ref = 0 if sized else size_type
        if kind == ARRAY:
            ref = struct.unpack_from("<I", b.data, pos + 12)[0]
        return Record(
            tid,
            kind,
            b.string(name_off) if name_off else "",
            info & 0xFFFF,
            bool(info >> 31),
            size_type if sized else 0,
            ref,
        )

    def _extra(self, tid: int) -> tuple[BTF, int]:
        b = self.owner(tid)
        return b, b._offsets[tid - b.first_id] + 12

    # --- kind-specific parts --------------------------------------------------------------------------------

    def int_encoding(self, tid: int) -> tuple[int, int, int]:
        """(encoding flags, bit offset, bit count) of an INT."""
        b, pos = self._extra(tid)
        v = struct.unpack_from("<I", b.data, pos)[0]
        return (v >> 24) & 0xF, (v >> 16) & 0xFF, v & 0xFF

    def array(self, tid: int) -> tuple[int, int]:
        """(element type id, number of elements)."""
        b, pos = self._extra(tid)
        elem, _index, n = struct.unpack_from("<III", b.data, pos)
        return elem, n

    def members(self, tid: int) -> list[tuple[str, int, int, int]]:
        """STRUCT/UNION members: (name, type id, bit offset, bit-field size or 0)."""
        r = self.record(tid)
        b, pos = self._extra(tid)
        out = []
        for i in range(r.vlen):
            name_off, mtype, off = struct.unpack_from("<III", b.data, pos + 12 * i)
            if r.kind_flag:
                out.append((b.string(name_off), mtype, off & 0xFFFFFF, off >> 24))
            else:
                out.append((b.string(name_off), mtype, off, 0))
        return out

    def enumerators(self, tid: int) -> list[tuple[str, int]]:
        r = self.record(tid)
        b, pos = self._extra(tid)
        out = []
        for i in range(r.vlen):
            if r.kind == ENUM64:
                name_off, lo, hi = struct.unpack_from("<III", b.data, pos + 12 * i)
                v = (hi << 32) | lo
                if r.kind_flag and v >= 1 << 63:
                    v -= 1 << 64
            else:
                name_off, v = struct.unpack_from("<I" + ("i" if r.kind_flag else "I"), b.data, pos + 8 * i)
            out.append((b.string(name_off), v))
        return out

    def params(self, tid: int) -> list[tuple[str, int]]:
        """FUNC_PROTO parameters: (name, type id); a final (\"\", 0) means `...`."""
        r = self.record(tid)
        b, pos = self._extra(tid)
        return [(b.string(n), t) for n, t in (struct.unpack_from("<II", b.data, pos + 8 * i) for i in range(r.vlen))]

    def datasec(self, tid: int) -> list[tuple[int, int, int]]:
        """DATASEC entries: (VAR type id, offset in the section, size)."""
        r = self.record(tid)
        b, pos = self._extra(tid)
        return [struct.unpack_from("<III", b.data, pos + 12 * i) for i in range(r.vlen)]

    # --- look-ups ---------------------------------------------------------------------------------------------

    def find(self, name: str, kinds: frozenset[int] | set[int]) -> list[int]:
        """Ids of the named types of the given kinds, this blob first, then its base."""
        out = [t for t in self.by_name.get(name, ()) if self.record(t).kind in kinds]
        if self.base is not None:
            out += self.base.find(name, kinds)
        return out

    def __len__(self) -> int:
        return self.next_id - 1
