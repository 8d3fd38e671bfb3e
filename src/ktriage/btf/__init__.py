"""The BTF tier: a vmcore analyzed from the dump alone, with no debug info.

    enable(prog, release) -> BTFTier      (reads BTF and kallsyms from the dump's memory, wires drgn up)

The kernel keeps its BTF (types) between `__start_BTF`/`__stop_BTF`, its symbols in kallsyms (VMCOREINFO
publishes where, kernels >= 6.0) and its ORC unwind tables in memory. drgn 0.3.0 reads kallsyms and ORC but
takes types only from DWARF; ktriage gives it BTF types and a table of globals so that drgn's helpers, stack
unwinding and ktriage's analyzers run unchanged. What BTF cannot give: locals, inlined frames, source lines,
and types of modules built without BTF.
"""

from __future__ import annotations

from ktriage.btf.reader import BTF, BTFError
from ktriage.btf.tier import BTFTier, enable

__all__ = ["BTF", "BTFError", "BTFTier", "enable"]
