"""Kernel objects by name without DWARF: globals (table + kallsyms), per-cpu variables and functions (BTF VAR and
FUNC records + kallsyms), enumerators (BTF enums).

drgn's helpers read `prog["init_task"]`, `prog["runqueues"]`, `prog["PIDTYPE_PID"]`; with DWARF these come from
the debug info. Here each comes from the source that can vouch for it, and a global whose table entry does not
fit this kernel is skipped with a reason (see globals.yaml) so only the helpers that need it stop.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ktriage.btf import reader as R
from ktriage.btf.drgn_types import BTFTypes

GLOBALS_FILE = os.path.join(os.path.dirname(__file__), "globals.yaml")


@dataclass(frozen=True)
class GlobalSpec:
    name: str
    type: str
    since: tuple[int, int] | None = None
    until: tuple[int, int] | None = None
    why: str = ""
    arch: str | None = None
    percpu: bool = False  # the kernel's BTF VAR record wins when it has one
    trim_zero: bool = False  # `T []`: an all-zero element is never an entry, so trailing ones are padding


def _version(s: str | None) -> tuple[int, int] | None:
    if not s:
        return None
    m = re.match(r"(\d+)\.(\d+)", str(s))
    return (int(m.group(1)), int(m.group(2))) if m else None


_TABLE: list[GlobalSpec] | None = None


def globals_table() -> list[GlobalSpec]:
    """globals.yaml, parsed (through the per-user cache: importing and running the YAML parser costs ~20 ms)."""
    global _TABLE
    if _TABLE is None:
        from ktriage import diskcache

        st = os.stat(GLOBALS_FILE)
        _TABLE = diskcache.cached(
            "btf-globals", diskcache.key_of("globals/3", st.st_size, st.st_mtime_ns), _read_globals
        )
    return _TABLE


def _read_globals() -> list[GlobalSpec]:
    import yaml

    with open(GLOBALS_FILE, encoding="utf-8") as f:
        rows = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or []
    return [
        GlobalSpec(
            r["name"],
            r["type"],
            _version(r.get("since")),
            _version(r.get("until")),
            r.get("why", ""),
            r.get("arch"),
            bool(r.get("percpu")),
            bool(r.get("trim_zero")),
        )
        for r in rows
    ]


def applies(spec: GlobalSpec, release: str, arch: str | None = None) -> bool:
    if spec.arch and arch and spec.arch != arch:
        return False
    v = _version(release)
    if v is None:
        return True
    return not ((spec.since and v < spec.since) or (spec.until and v > spec.until))


class BTFObjects:
    """drgn object finder over the BTF tier. `skipped` records, by name, why a global was not given a type."""

    def __init__(self, prog: Any, types: BTFTypes, release: str, untyped_functions: bool = True) -> None:
        self.prog = prog
        self.untyped_functions = untyped_functions  # a function symbol without a BTF FUNC stands as `void (...)`
        self.types = types
        self.release = release
        try:
            arch = prog.platform.arch.name.lower()
        except AttributeError:
            arch = None
        self.table = {g.name: g for g in globals_table() if applies(g, release, arch)}
        self.skipped: dict[str, str] = {}
        self.unchecked: set[str] = set()
        self._enumerators: dict[str, tuple[R.BTF, int, int]] | None = None
        self._cache: dict[str, Any] = {}

    def check_table(self) -> dict[str, str]:
        """Every table entry that does not fit this kernel, with the reason (symbol missing, type unknown to
        its BTF, type larger than the symbol's extent). Cheap: types are built without their members."""
        for name, spec in self.table.items():
            if name not in self.skipped and not (spec.percpu and self._btf_var(name)):
                self._global(spec)
        return dict(self.skipped)

    # --- the three kinds of object -------------------------------------------------------------------------

    def _symbol(self, name: str) -> Any:
        try:
            return self.prog.symbol(name)
        except LookupError:
            return None

    def variable(self, name: str) -> Any:
        import drgn

        spec = self.table.get(name)
        if spec is not None and not spec.percpu:
            return self._global(spec)
        # a BTF VAR: per-cpu variables (and every global on kernels built with pahole's global_var feature)
        var = self._btf_var(name)
        if var is not None:
            b, r = var
            sym = self._symbol(name)
            if sym is None:
                self.skipped[name] = "in BTF but not in kallsyms"
                return None
            return drgn.Object(self.prog, b.type(r.ref), address=sym.address)
        return self._global(spec) if spec is not None else None

    def _btf_var(self, name: str) -> Any:
        """(builder, record) of the BTF VAR named `name`, or None (older pahole wrote no per-cpu VARs)."""
        for b in self.types.builders:
            for tid in b.btf.by_name.get(name, ()):
                r = b.btf.record(tid)
                if r.kind == R.VAR:
                    return b, r
        return None

    def _global(self, spec: GlobalSpec) -> Any:
        import drgn

        sym = self._symbol(spec.name)
        if sym is None:
            self.skipped[spec.name] = "not in this kernel's kallsyms"
            return None
        try:
            t = self.prog.type(spec.type.replace("[]", "").rstrip() if spec.type.endswith("[]") else spec.type)
        except (LookupError, SyntaxError, ValueError) as e:
            self.skipped[spec.name] = f"type `{spec.type}` not in this kernel's BTF ({e})"
            return None
        extent = sym.size or 0
        if not extent:
            self.unchecked.add(spec.name)  # kallsyms gives no extent: the type's size cannot be checked
        if spec.type.endswith("[]"):
            n = extent // drgn.sizeof(t) if extent else 0
            n = self._trim_padding(sym.address, t, n, spec.trim_zero)
            t = self.prog.array_type(t, n or None)
        elif extent and drgn.sizeof(t) > extent:
            self.skipped[spec.name] = (
                f"type `{spec.type}` is {drgn.sizeof(t)} bytes but the symbol spans {extent}: the "
                f"table does not fit this kernel"
            )
            return None
        return drgn.Object(self.prog, t, address=sym.address)

    def _trim_padding(self, address: int, elem: Any, n: int, zero_is_padding: bool = False) -> int:
        """The symbol's extent runs to the next symbol, alignment padding included: for an array of pointers
        (or an entry that says so), drop trailing all-zero slots (padding is zero; a NULL terminator is not an
        element either)."""
        if n <= 0 or not (zero_is_padding or elem.unaliased_kind().name == "POINTER"):
            return n
        size = elem.size
        try:
            data = self.prog.read(address, n * size)
        except Exception:  # noqa: BLE001 - drgn.FaultError: keep the extent
            return n
        while n and not any(data[(n - 1) * size : n * size]):
            n -= 1
        return n

    def function(self, name: str) -> Any:
        import drgn

        for b in self.types.builders:
            for tid in b.btf.by_name.get(name, ()):
                r = b.btf.record(tid)
                if r.kind == R.FUNC:
                    sym = self._symbol(name)
                    if sym is None:
                        return None
                    return drgn.Object(self.prog, b.type(r.ref), address=sym.address)
        # pahole before 1.21 encoded only ftrace-able functions (Debian 11's 5.10 has no FUNC for __meminit
        # vmemmap_populate, which drgn looks up to know CONFIG_SPARSEMEM_VMEMMAP): a function symbol stands,
        # with its prototype unknown (`void (...)`)
        if not self.untyped_functions:
            return None
        sym = self._symbol(name)
        if sym is None or sym.kind != drgn.SymbolKind.FUNC:
            return None
        unknown = self.prog.function_type(self.prog.void_type(), (), is_variadic=True)
        return drgn.Object(self.prog, unknown, address=sym.address)

    def constant(self, name: str) -> Any:
        import drgn

        if self._enumerators is None:
            self._enumerators = {}
            for b in self.types.builders:
                btf = b.btf
                for tid in btf.enum_ids:
                    for ename, v in btf.enumerators(tid):
                        self._enumerators.setdefault(ename, (btf, tid, v))
        hit = self._enumerators.get(name)
        if hit is None:
            return None
        btf, tid, v = hit
        return drgn.Object(self.prog, self.types.builder_for(btf).type(tid), value=v)

    # --- drgn's object finder callback ----------------------------------------------------------------------

    def finder(self, prog: Any, name: str, flags: Any, filename: str | None) -> Any:
        import drgn

        key = f"{flags.value}:{name}"
        if key in self._cache:
            return self._cache[key]
        obj = None
        if flags & drgn.FindObjectFlags.VARIABLE:
            obj = self.variable(name)
        if obj is None and flags & drgn.FindObjectFlags.FUNCTION:
            obj = self.function(name)
        if obj is None and flags & drgn.FindObjectFlags.CONSTANT:
            obj = self.constant(name)
        self._cache[key] = obj
        return obj
