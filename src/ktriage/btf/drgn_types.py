"""BTF records as drgn types, built lazily, and the finders that give them to a drgn Program.

drgn 0.3.0 reads types only from DWARF; `Program.register_type_finder` lets Python supply them. Types are built
when asked for and cached by id; struct members are lazy (`TypeMember(callable, ...)`) so that asking for
`struct task_struct` does not build the whole kernel's type graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ktriage.btf import reader as R


class TypeBuilder:
    """Builds drgn types from one BTF blob (a module's split BTF resolves base ids through its base)."""

    def __init__(
        self, prog: Any, btf: R.BTF, complete: Callable[[str, int], Any] | None = None, base: TypeBuilder | None = None
    ) -> None:
        self.prog = prog
        self.btf = btf
        self._cache: dict[int, Any] = {}
        self._complete = complete  # resolves a FWD to the complete struct/union of that name
        self.base = base  # a module's builder hands the kernel's type ids to the kernel's builder (one Type each)

    def type(self, tid: int) -> Any:
        if self.base is not None and tid < self.btf.first_id:
            return self.base.type(tid)
        t = self._cache.get(tid)
        if t is None:
            t = self._build(tid)
            self._cache[tid] = t
        return t

    def _build(self, tid: int) -> Any:
        import drgn

        prog, btf = self.prog, self.btf
        if tid == 0:
            return prog.void_type()
        r = btf.record(tid)
        k = r.kind
        name = r.name or None
        if k == R.INT:
            enc, _off, _bits = btf.int_encoding(tid)
            if enc & R.INT_BOOL:
                return prog.bool_type(r.name or "_Bool", r.size)
            # trust the encoding: `char` is unsigned on arm64 and, since 6.2 (-funsigned-char), on every arch
            return prog.int_type(r.name, r.size, bool(enc & R.INT_SIGNED))
        if k == R.FLOAT:
            return prog.float_type(r.name, r.size)
        if k == R.PTR:
            return prog.pointer_type(self.type(r.ref))
        if k == R.ARRAY:
            elem, n = btf.array(tid)
            # BTF writes a flexible array member `T x[]` as 0 elements; drgn (like DWARF) calls it incomplete
            return prog.array_type(self.type(elem), n if n else None)
        if k in (R.STRUCT, R.UNION):
            ms = btf.members(tid)
            if not r.kind_flag:  # pahole < 1.16 wrote a bit-field's width and offset in its INT type instead
                ms = [self._int_bitfield(m) for m in ms]
            members = [
                drgn.TypeMember(self._lazy(mt, bsize, zero_len=i < len(ms) - 1), mname or None, boff)
                for i, (mname, mt, boff, bsize) in enumerate(ms)
            ]
            make = prog.struct_type if k == R.STRUCT else prog.union_type
            return make(name, r.size, members)
        if k in (R.ENUM, R.ENUM64):
            values = btf.enumerators(tid)
            signed = r.kind_flag or any(v < 0 for _, v in values)
            cname = {1: "char", 2: "short", 4: "int", 8: "long"}.get(r.size, "int")
            compat = prog.int_type(("" if signed else "unsigned ") + cname, r.size, signed)
            return prog.enum_type(name, compat, [drgn.TypeEnumerator(n, v) for n, v in values])
        if k == R.FWD:
            if self._complete is not None and name:
                full = self._complete(name, R.UNION if r.kind_flag else R.STRUCT)
                if full is not None:
                    return full
            return (prog.union_type if r.kind_flag else prog.struct_type)(name)
        if k == R.TYPEDEF:
            return prog.typedef_type(r.name, self.type(r.ref))
        if k in (R.VOLATILE, R.CONST, R.RESTRICT):
            q = {
                R.VOLATILE: drgn.Qualifiers.VOLATILE,
                R.CONST: drgn.Qualifiers.CONST,
                R.RESTRICT: drgn.Qualifiers.RESTRICT,
            }[k]
            inner = self.type(r.ref)
            return inner.qualified(inner.qualifiers | q)
        if k in (R.TYPE_TAG, R.DECL_TAG, R.VAR, R.FUNC):
            return self.type(r.ref)
        if k == R.FUNC_PROTO:
            params = btf.params(tid)
            variadic = bool(params) and params[-1] == ("", 0)
            if variadic:
                params = params[:-1]
            return prog.function_type(
                self.type(r.ref), [drgn.TypeParameter(self._lazy(pt), pn or None) for pn, pt in params], variadic
            )
        raise R.BTFError(f"{btf.name}: type {tid} of kind {r.kind_name} has no drgn equivalent")

    def _int_bitfield(self, m: tuple[str, int, int, int]) -> tuple[str, int, int, int]:
        name, mt, boff, bsize = m
        if mt == 0 or bsize:
            return m
        r = self.btf.record(mt)
        if r.kind != R.INT:
            return m
        enc, off, bits = self.btf.int_encoding(mt)
        if bits and not enc & R.INT_BOOL and (bits != r.size * 8 or off):
            return name, mt, boff + off, bits
        return m

    def _zero_length_array(self, tid: int) -> Any:
        """BTF writes both `T x[0]` (a GNU marker inside a struct) and `T x[]` (a flexible array, always last)
        as 0 elements; a member that is not the last one can only be the former."""
        elem, _n = self.btf.array(tid)
        return self.prog.array_type(self.type(elem), 0)

    def _lazy(self, tid: int, bit_field_size: int = 0, zero_len: bool = False) -> Callable[[], Any]:
        if zero_len and tid:
            r = self.btf.record(tid)
            if r.kind == R.ARRAY and self.btf.array(tid)[1] == 0:
                return lambda: self._zero_length_array(tid)
        if bit_field_size:  # drgn carries a bit-field's width on an absent Object of the member's type
            import drgn

            return lambda: drgn.Object(self.prog, self.type(tid), bit_field_size=bit_field_size)
        return lambda: self.type(tid)


_C_INT_WORDS = frozenset({"signed", "unsigned", "char", "short", "int", "long", "_Bool", "__int128"})


def int_spellings(name: str) -> tuple[str, ...]:
    """The names GCC and clang give the C integer type `name` in DWARF, hence in BTF (pahole copies them).

    Why: drgn asks its type finders for a primitive in several spellings ("unsigned long", "long unsigned", ...,
    "long unsigned int"); a finder placed before DWARF's that misses the first ones hands them to DWARF, which
    then indexes the whole vmlinux to answer. () for anything that is not an integer type's name."""
    words = name.split()
    if not words or any(w not in _C_INT_WORDS for w in words):
        return ()
    unsigned = "unsigned" in words
    if "char" in words:
        sign = "unsigned " if unsigned else "signed " if "signed" in words else ""
        return (sign + "char",)
    if "_Bool" in words:
        return ("_Bool",)
    if "__int128" in words:
        return ("__int128 unsigned", "unsigned __int128") if unsigned else ("__int128",)
    base = "short" if "short" in words else " ".join(["long"] * words.count("long")) or "int"
    if base == "int":
        return ("unsigned int",) if unsigned else ("int",)
    # GCC: "long unsigned int", "short int"; clang: "unsigned long", "short"
    return (f"{base} unsigned int", f"unsigned {base}") if unsigned else (f"{base} int", base)


# drgn TypeKind -> the BTF kinds that can answer it
def _kind_map() -> dict[Any, frozenset[int]]:
    import drgn

    return {
        drgn.TypeKind.STRUCT: frozenset({R.STRUCT}),
        drgn.TypeKind.UNION: frozenset({R.UNION}),
        drgn.TypeKind.ENUM: frozenset({R.ENUM, R.ENUM64}),
        drgn.TypeKind.TYPEDEF: frozenset({R.TYPEDEF}),
        drgn.TypeKind.INT: frozenset({R.INT}),
        drgn.TypeKind.BOOL: frozenset({R.INT}),
        drgn.TypeKind.FLOAT: frozenset({R.FLOAT}),
    }


class BTFTypes:
    """The kernel's BTF and its modules' split BTF behind one drgn type finder. Complete definitions win over
    forward declarations; the kernel's types win over a module's of the same name."""

    def __init__(self, prog: Any, vmlinux: R.BTF) -> None:
        self.prog = prog
        self.vmlinux = vmlinux
        self.builders: list[TypeBuilder] = [TypeBuilder(prog, vmlinux, self._complete)]
        self._kinds = _kind_map()
        self.built_by_name = 0

    def add_module(self, btf: R.BTF) -> None:
        self.builders.append(TypeBuilder(self.prog, btf, self._complete, base=self.builders[0]))

    def _complete(self, name: str, kind: int) -> Any:
        for b in self.builders:
            for tid in b.btf.by_name.get(name, ()):
                r = b.btf.record(tid)
                if r.kind == kind and (r.vlen or r.size):
                    return b.type(tid)
        return None

    def lookup(self, name: str, btf_kinds: frozenset[int]) -> Any:
        best = None
        for b in self.builders:
            for tid in b.btf.by_name.get(name, ()):
                r = b.btf.record(tid)
                if r.kind not in btf_kinds:
                    continue
                if r.kind in (R.STRUCT, R.UNION) and not (r.vlen or r.size):
                    best = best or (b, tid)  # an empty definition: keep looking for a real one
                    continue
                return b.type(tid)
        return best[0].type(best[1]) if best else None

    def finder(self, prog: Any, kinds: Any, name: str, filename: str | None) -> Any:
        """drgn type finder: (prog, TypeKindSet, name, filename) -> Type | None."""
        want: set[int] = set()
        for k in kinds:
            want |= self._kinds.get(k, frozenset())
        if not want:
            return None
        t = self.lookup(name, frozenset(want))
        if t is None and want <= {R.INT}:
            for spelling in int_spellings(name):
                if spelling != name and (t := self.lookup(spelling, frozenset(want))) is not None:
                    break
        if t is not None:
            self.built_by_name += 1
            if t.kind not in kinds:  # an INT asked as BOOL or the other way round
                return None
        return t

    def builder_for(self, btf: R.BTF) -> TypeBuilder:
        for b in self.builders:
            if b.btf is btf:
                return b
        raise KeyError(btf.name)
