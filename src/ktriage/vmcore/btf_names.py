"""The dwarf tier with names from the dump's BTF: the vmlinux's and modules' DWARF attached, read by address only.

    names_first(prog, paths, release) -> (BTFTier, DwarfGate) | str | None
    btf_names_suffice(prog) -> bool

Why: drgn 0.3.0 builds one name index over all of a file's DWARF the first time a type or object is looked up by
name in it, and the first thing it does with a kernel (listing its modules) is such a lookup: on a distribution
kernel's 600 MB vmlinux that is 0.35 s of CPU and 180 MB, most of a report's cost. Attaching a file
(Module.try_file) does not index it, and what is found by address (a frame's function, locals, inlined callers,
source line) needs no index; Program.load_debug_info indexes what it loaded when it returns. So the files are
attached with try_file, the BTF tier's finders answer names first, and ktriage.btf.dwarf_gate sends on to DWARF
only the names DWARF may have. Kernels whose dump has no usable BTF keep the plain DWARF path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import drgn

    from ktriage.btf import BTFTier
    from ktriage.btf.dwarf_gate import DwarfGate

# Names drgn's own C code looks up by name on every kernel, whatever the report reads: libdrgn's
# linux_kernel_get_vmemmap_address asks for the function `vmemmap_populate` (CONFIG_SPARSEMEM_VMEMMAP). BTF written
# by older pahole has no FUNC record for such __meminit functions (Debian 11's 5.10 has none), so with names from BTF
# that lookup would reach DWARF and build its index anyway, after the BTF set-up.
DRGN_PROBES = ("vmemmap_populate",)
MAX_RENAMED_TRIES = 2000  # try_file calls (each reads an ELF's build id) spent on files named after no loaded module


def names_first(prog: drgn.Program, paths: list[str], release: str) -> tuple[BTFTier, DwarfGate] | str | None:
    """The vmlinux among `paths` attached and the dump's BTF put in front of its DWARF for names, with the gate
    between them: (tier, gate). None when this does not apply (no vmlinux matches the dump, or its BTF lacks
    what drgn probes); the reason when the dump's BTF could not be read. Either way nothing was indexed."""
    vmlinux = [p for p in paths if ".ko" not in os.path.basename(p)]  # not foo.ko, foo.ko.debug
    if attach_vmlinux(prog, vmlinux) is None or not btf_names_suffice(prog):
        return None
    from ktriage.btf import enable
    from ktriage.btf.dwarf_gate import DwarfGate

    try:
        tier = enable(prog, release, "the vmlinux's ELF symbols", before_dwarf=True)
    except Exception as e:  # noqa: BLE001 - LookupError, BTFError, drgn.FaultError: plain DWARF
        return " ".join(str(e).split())[:300] or type(e).__name__
    gate = DwarfGate(prog, tier.modules_with_btf)
    gate.register()
    attach_module_files(prog, paths)
    return tier, gate


def attach_vmlinux(prog: drgn.Program, paths: list[str]) -> drgn.MainModule | None:
    """The kernel image (drgn's main module, from VMCOREINFO: no lookup by name yet) with the first of `paths`
    attached that drgn takes as its debug file (only the file with the dump's build id); None when none is."""
    import drgn

    try:
        main, _new = next(prog.loaded_modules())
    except Exception:  # noqa: BLE001 - drgn.Error/LookupError/StopIteration on an odd dump
        return None
    if not isinstance(main, drgn.MainModule) or main.build_id is None:
        return None
    for p in paths:
        if main.debug_file_status != drgn.ModuleFileStatus.WANT:
            break
        try:
            main.try_file(p)
        except Exception:  # noqa: BLE001 - an unreadable candidate: load_debug_info reports what matters
            continue
    return main if main.debug_file_status == drgn.ModuleFileStatus.HAVE else None


def btf_names_suffice(prog: drgn.Program) -> bool:
    """Can names come from the dump's BTF without drgn indexing the vmlinux's DWARF? No BTF at all, or a BTF
    whose strings lack a name drgn probes that the kernel has (a symbol), says no. Reads only symbols and the
    BTF's bytes (a C-speed search), never parses it."""
    try:
        # the vmlinux's own symbol table: no BTF in the image, none in the dump
        start = prog.symbol("__start_BTF").address
        stop = prog.symbol("__stop_BTF").address
        blob = prog.read(start, stop - start) if 24 <= stop - start <= 64 << 20 else b""
    except Exception:  # noqa: BLE001 - LookupError, drgn.FaultError: names-first would find no BTF either
        return False
    for name in DRGN_PROBES:
        try:
            prog.symbol(name)
        except LookupError:
            continue
        if b"\0" + name.encode() + b"\0" not in blob:
            return False
    return True


def attach_module_files(prog: drgn.Program, paths: list[str]) -> None:
    """Each loaded module's debug file among `paths`, by its name (or its build id's file name), attached with
    Module.try_file, which checks the build id."""
    import drgn

    by_name: dict[str, list[str]] = {}
    for p in paths:
        base = os.path.basename(p)
        if ".ko" in base:
            by_name.setdefault(base.split(".ko", 1)[0].replace("-", "_"), []).append(p)
        elif base.endswith(".debug"):  # /usr/lib/debug/.build-id/ab/cdef....debug
            by_name.setdefault(os.path.basename(os.path.dirname(p)) + base[: -len(".debug")], []).append(p)
    wanting = [
        m
        for m in prog.modules()
        if isinstance(m, drgn.RelocatableModule) and m.debug_file_status == drgn.ModuleFileStatus.WANT
    ]
    keys = {m.name.replace("-", "_") for m in wanting} | {m.build_id.hex() for m in wanting if m.build_id}
    for m in wanting:
        bid = m.build_id.hex() if m.build_id else ""
        _try_files(m, by_name.get(m.name.replace("-", "_"), []) + by_name.get(bid, []))
    # a file named after no loaded module may still be one under another name (`--debuginfo mymod-dbg.ko`), which
    # load_debug_info would have matched by build id: a few such files are tried on every module still without one
    others = [p for key, ps in by_name.items() if key not in keys for p in ps]
    left = [m for m in wanting if m.debug_file_status == drgn.ModuleFileStatus.WANT]
    if left and len(others) * len(left) <= MAX_RENAMED_TRIES:
        for m in left:
            _try_files(m, others)


def _try_files(m: drgn.Module, paths: list[str]) -> None:
    """Module.try_file on each path until one is taken."""
    import drgn

    for p in paths:
        try:
            m.try_file(p)
        except Exception:  # noqa: BLE001 - unreadable candidate
            continue
        if m.debug_file_status != drgn.ModuleFileStatus.WANT:
            return
