"""Wire a debug-info-less drgn Program up with the dump's own BTF, kallsyms and ORC.

Order matters: the kernel's BTF first (types), then the object finder (globals), then the main module's
address range (so drgn copies the built-in ORC tables from memory and can unwind), then the loaded modules
(`struct module` is a BTF type now), their split BTF and their kallsyms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ktriage.btf.drgn_types import BTFTypes
from ktriage.btf.objects import BTFObjects
from ktriage.btf.reader import BTF, BTFError

MAX_BTF_BYTES = 64 << 20  # a distribution kernel's BTF is ~5 MB; more means the symbols are wrong


@dataclass
class BTFTier:
    types: BTFTypes
    objects: BTFObjects
    vmlinux_bytes: int
    vmlinux_types: int
    modules_with_btf: list[str] = field(default_factory=list)
    modules_without_btf: list[str] = field(default_factory=list)
    unwinding: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    symbols: str = "kallsyms"  # where the kernel's symbols came from (the session's note says how)

    def summary(self) -> str:
        mods = ""
        if self.modules_with_btf or self.modules_without_btf:
            mods = f", {len(self.modules_with_btf)} module(s) with split BTF"
            if self.modules_without_btf:
                mods += " (none for: " + ", ".join(self.modules_without_btf) + ")"
        return (
            f"BTF from the dump: {self.vmlinux_types} types ({self.vmlinux_bytes / (1 << 20):.1f} MB) between "
            f"__start_BTF and __stop_BTF{mods}; symbols from {self.symbols}; "
            + (
                "stacks unwound by drgn from the kernel's own tables (ORC on x86_64, frame pointers on arm64)"
                if self.unwinding
                else "no stack unwinding"
            )
        )


def _symbol_address(prog: Any, name: str) -> int:
    return prog.symbol(name).address


def read_vmlinux_btf(prog: Any) -> BTF:
    """The kernel's BTF blob from memory. Raises LookupError/BTFError/drgn.FaultError with the reason."""
    try:
        start = _symbol_address(prog, "__start_BTF")
        stop = _symbol_address(prog, "__stop_BTF")
    except LookupError:
        raise LookupError(
            "no __start_BTF/__stop_BTF in kallsyms: the kernel was built without CONFIG_DEBUG_INFO_BTF"
        ) from None
    if not 24 <= stop - start <= MAX_BTF_BYTES:
        raise BTFError(f"__start_BTF..__stop_BTF spans {stop - start} bytes: not a BTF blob")
    return BTF(prog.read(start, stop - start), name="vmlinux")


def enable(prog: Any, release: str, symbols: str = "kallsyms", before_dwarf: bool = False) -> BTFTier:
    """Make drgn see types, globals, threads and stacks from the dump alone. Raises when the kernel has no BTF.

    before_dwarf: the vmlinux's DWARF is attached too (ktriage.vmcore's dwarf tier): BTF answers names first,
    so that drgn builds its DWARF name index only for a name BTF does not have; DWARF still gives what is found
    by address (locals, inlined frames, source lines). A function BTF has no prototype for is then left to DWARF
    instead of standing as `void (...)`."""
    t0 = time.perf_counter()
    btf = read_vmlinux_btf(prog)  # raises before anything is registered: the session stays on the symbols tier
    types = BTFTypes(prog, btf)
    objects = BTFObjects(prog, types, release, untyped_functions=not before_dwarf)
    tier = BTFTier(types, objects, len(btf.data), len(btf), symbols=symbols)
    if not before_dwarf:  # with the vmlinux attached drgn knows the image's range already
        _main_module(prog, tier)
    prog.register_type_finder("ktriage-btf", types.finder, enable_index=0)
    # after drgn's "linux" finder (jiffies, PAGE_SIZE, vmemmap, ...), before "dwarf" when it is there
    prog.register_object_finder("ktriage-btf", objects.finder, enable_index=1 if before_dwarf else -1)
    _modules(prog, tier, btf)
    if not before_dwarf:  # with DWARF behind, it answers what the table cannot type: these notes do not apply
        _check_table(objects, tier)
    tier.seconds = time.perf_counter() - t0
    return tier


def _check_table(objects: BTFObjects, tier: BTFTier) -> None:
    """Say which table entries this kernel cannot type, and which kallsyms cannot size."""
    skipped = objects.check_table()
    if skipped:
        tier.notes.append(
            "globals without a type on this kernel (what reads them is skipped): "
            + "; ".join(f"{n}: {why}" for n, why in sorted(skipped.items()))
        )
    if objects.unchecked:
        tier.notes.append(
            "globals typed from the table whose size kallsyms cannot confirm (no extent): "
            + ", ".join(sorted(objects.unchecked))
        )


def _main_module(prog: Any, tier: BTFTier) -> None:
    """The kernel image's address range: with it drgn finds the built-in ORC tables in memory."""
    try:
        try:
            start = _symbol_address(prog, "_stext")
        except LookupError:
            start = _symbol_address(prog, "_text")
        end = _symbol_address(prog, "_end")
    except LookupError as e:
        tier.notes.append(f"kernel image range unknown ({e}): no stack unwinding")
        return
    try:
        main = prog.main_module("kernel", create=True)
        main.address_range = (start, end)
        tier.unwinding = True
    except Exception as e:  # noqa: BLE001 - drgn raises ValueError/LookupError here
        tier.notes.append(f"kernel image range not set ({e}): no stack unwinding")


def _modules(prog: Any, tier: BTFTier, base: BTF) -> None:
    """Loaded modules (drgn walks `modules` with BTF types), their split BTF and their kallsyms."""
    import drgn

    try:
        prog.create_loaded_modules()
    except Exception as e:  # noqa: BLE001
        tier.notes.append(f"loaded modules could not be listed: {e}")
        return
    kept = _btf_module_blobs(prog, tier)
    for m in prog.modules():
        if not isinstance(m, drgn.RelocatableModule):
            continue
        try:
            where = kept.get(m.object.value_())
            if where is None:
                tier.modules_without_btf.append(m.name)
                continue
            tier.types.add_module(BTF(prog.read(*where), base=base, name=m.name))
            tier.modules_with_btf.append(m.name)
        except (BTFError, drgn.FaultError, LookupError, AttributeError) as e:
            tier.modules_without_btf.append(m.name)
            tier.notes.append(f"module {m.name}: split BTF unreadable ({e})")
    try:
        from drgn.helpers.linux.kallsyms import load_module_kallsyms

        prog.register_symbol_finder("module_kallsyms", load_module_kallsyms(prog), enable_index=1)
    except ValueError:
        pass  # already registered by the symbols tier
    except Exception as e:  # noqa: BLE001
        tier.notes.append(f"module symbols could not be read: {e}")


def _btf_module_blobs(prog: Any, tier: BTFTier) -> dict[int, tuple[int, int]]:
    """`struct module *` -> (address, size) of its split BTF. The kernel copies each module's .BTF into a
    `struct btf` on the `btf_modules` list (kernel/bpf/btf.c) and clears `module.btf_data` after init, because
    the section itself is freed with the load image."""
    from drgn.helpers.linux.list import list_for_each_entry

    out: dict[int, tuple[int, int]] = {}
    try:
        head = prog["btf_modules"]
    except (KeyError, LookupError):
        tier.notes.append(
            "no btf_modules list in this kernel: its modules carry no BTF (CONFIG_DEBUG_INFO_BTF_MODULES, Linux "
            "5.11+, is off or absent), so modules' types (and what needs them: members of module structs, "
            "module functions' parameters) need their .ko debug info"
        )
        return out
    try:
        for bm in list_for_each_entry("struct btf_module", head.address_of_(), "list"):
            btf = bm.btf
            out[bm.module.value_()] = (btf.data.value_(), int(btf.data_size))
    except Exception as e:  # noqa: BLE001 - drgn.FaultError, LookupError on an odd kernel
        tier.notes.append(f"btf_modules could not be walked: {e}")
    return out
