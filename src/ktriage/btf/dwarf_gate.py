"""The finder that stands between BTF's and DWARF's when a vmcore has both: it lets a name through to DWARF
only when DWARF could answer it.

drgn 0.3.0 builds one name index over every loaded DWARF file the first time a type or object is looked up
by name in DWARF (0.35 s of CPU and 180 MB for a distribution kernel's 600 MB vmlinux, most of a report). With
the dump's BTF answering names first, the lookups that still miss are mostly probes for what this kernel does
not have (drgn's helpers try `vmap_nodes` before `vmap_area_root`, `thread_union`, SLAB's `freelist_idx_t`).
Sending those to DWARF builds the index to learn nothing, because the vmlinux's BTF is pahole's translation of
the vmlinux's DWARF: every type name of one is a type name of the other.

So a name BTF missed goes on to DWARF only when
  - a module loaded with DWARF but without BTF (an out-of-tree module) has it (a small drgn Program over those
    modules' debug files alone answers that, with an index of a few KB), or
  - for a variable or function: the kernel has a symbol of that name (a global whose type BTF does not give,
    pahole before 1.26 writes no VAR for ordinary globals).
Otherwise the finder raises LookupError, which drgn takes as "not found" (its own ObjectNotFoundError).
What cannot be told apart this way: a DWARF-only constant (a `static const` folded into DW_AT_const_value, no
symbol) of the vmlinux. drgn's helpers and ktriage's analyzers look none up.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import drgn

_KEYWORDS = {"STRUCT": "struct ", "UNION": "union ", "ENUM": "enum ", "CLASS": "class "}


class DwarfGate:
    """The type and object finders to register right after ktriage-btf's. `passed` lists the names sent on to
    DWARF (the first one built drgn's index); `refused` counts the others."""

    def __init__(self, prog: drgn.Program, modules_with_btf: Collection[str]) -> None:
        self.prog = prog
        self.modules_with_btf = frozenset(modules_with_btf)  # their split BTF is in ktriage-btf's type finder
        self.passed: list[str] = []
        self.refused = 0
        self._modules: drgn.Program | None = None
        self._module_files: tuple[str, ...] | None = None

    def register(self) -> None:
        prog = self.prog
        at = prog.enabled_type_finders().index("ktriage-btf") + 1
        prog.register_type_finder("ktriage-dwarf-gate", self.type_finder, enable_index=at)
        at = prog.enabled_object_finders().index("ktriage-btf") + 1
        prog.register_object_finder("ktriage-dwarf-gate", self.object_finder, enable_index=at)

    # --- drgn's finder callbacks ----------------------------------------------------------------------------

    def type_finder(self, prog: drgn.Program, kinds: drgn.TypeKindSet, name: str, filename: str | None) -> None:
        if filename is not None or self._module_has_type(kinds, name):
            self.passed.append(f"type {name}")
            return None
        self.refused += 1
        keyword = _KEYWORDS.get(next(iter(kinds)).name, "") if len(kinds) == 1 else ""
        raise LookupError(f"could not find '{keyword}{name}'")

    def object_finder(self, prog: drgn.Program, name: str, flags: drgn.FindObjectFlags, filename: str | None) -> None:
        import drgn

        wants_address = bool(flags & (drgn.FindObjectFlags.VARIABLE | drgn.FindObjectFlags.FUNCTION))
        if filename is not None or (wants_address and self._has_symbol(name)) or self._module_has_object(name, flags):
            self.passed.append(f"object {name}")
            return None
        self.refused += 1
        raise LookupError(f"could not find '{name}'")

    # --- what DWARF could answer ----------------------------------------------------------------------------

    def _has_symbol(self, name: str) -> bool:
        try:
            self.prog.symbol(name)
        except LookupError:
            return False
        return True

    def _dwarf_only_modules(self) -> drgn.Program | None:
        """A Program over the debug files of loaded modules that carry no BTF (rebuilt when that set changes)."""
        import drgn

        files = []
        for m in self.prog.modules():
            if isinstance(m, drgn.RelocatableModule) and m.debug_file_path and m.name not in self.modules_with_btf:
                files.append((m.name, m.debug_file_path))
        key = tuple(sorted(p for _, p in files))
        if key != self._module_files:
            self._module_files = key
            self._modules = None
            if files:
                p2 = drgn.Program(self.prog.platform)
                for name, path in files:
                    p2.extra_module(name, create=True).try_file(path, force=True)
                self._modules = p2
        return self._modules

    def _module_has_type(self, kinds: drgn.TypeKindSet, name: str) -> bool:
        p2 = self._dwarf_only_modules()
        if p2 is None:
            return False
        for kind in kinds:
            try:
                p2.type(_KEYWORDS.get(kind.name, "") + name)
                return True
            except (LookupError, SyntaxError, ValueError):
                continue
        return False

    def _module_has_object(self, name: str, flags: drgn.FindObjectFlags) -> bool:
        p2 = self._dwarf_only_modules()
        if p2 is None:
            return False
        try:
            p2.object(name, flags)
        except (LookupError, ValueError):
            return False
        return True
