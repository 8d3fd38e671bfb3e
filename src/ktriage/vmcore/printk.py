"""The kernel log from a dump without debug info: the printk ring buffer through VMCOREINFO.

The kernel publishes the layout of its lockless printk ring buffer (5.10+) in VMCOREINFO
(`SYMBOL(prb)`, `OFFSET(prb_desc_ring.descs)`, ...) precisely so that tools without DWARF
(makedumpfile --dump-dmesg) can read the log. This reads it with drgn's raw memory reads: no
types needed. Returns None when the dump does not publish the layout (older kernels: the
pre-5.10 `log_buf` format is not decoded here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import drgn

DESC_FLAGS_SHIFT = 62
DESC_ID_MASK = (1 << DESC_FLAGS_SHIFT) - 1
DESC_COMMITTED, DESC_FINALIZED = 1, 2


def vmcoreinfo_dict(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def dmesg_from_vmcoreinfo(prog: drgn.Program, vi: Mapping[str, str], max_records: int = 1 << 20) -> str | None:
    """The log as `[   12.345678] text` lines, or None when VMCOREINFO lacks the ring buffer layout."""
    try:
        prb_sym = int(vi["SYMBOL(prb)"], 16)

        def off(name: str) -> int:
            return int(vi[f"OFFSET({name})"])

        def size(name: str) -> int:
            return int(vi[f"SIZE({name})"])

        counter = off("atomic_long_t.counter")
        prb = prog.read_u64(prb_sym)
        desc_ring = prb + off("printk_ringbuffer.desc_ring")
        text_ring = prb + off("printk_ringbuffer.text_data_ring")
        count_bits = prog.read_u32(desc_ring + off("prb_desc_ring.count_bits"))
        descs = prog.read_u64(desc_ring + off("prb_desc_ring.descs"))
        infos = prog.read_u64(desc_ring + off("prb_desc_ring.infos"))
        head_id = prog.read_u64(desc_ring + off("prb_desc_ring.head_id") + counter)
        tail_id = prog.read_u64(desc_ring + off("prb_desc_ring.tail_id") + counter)
        size_bits = prog.read_u32(text_ring + off("prb_data_ring.size_bits"))
        data = prog.read_u64(text_ring + off("prb_data_ring.data"))
        desc_size, info_size = size("prb_desc"), size("printk_info")
        sv_off, lpos_off = off("prb_desc.state_var"), off("prb_desc.text_blk_lpos")
        begin_off, next_off = off("prb_data_blk_lpos.begin"), off("prb_data_blk_lpos.next")
        ts_off, len_off = off("printk_info.ts_nsec"), off("printk_info.text_len")
    except KeyError:
        return None
    if count_bits > 24 or size_bits > 32:
        return None
    count = 1 << count_bits
    dsize = 1 << size_bits
    lines: list[str] = []
    rid = tail_id
    for _ in range(min(count, max_records)):
        idx = rid & (count - 1)
        d = descs + idx * desc_size
        try:
            sv = prog.read_u64(d + sv_off + counter)
            if (sv & DESC_ID_MASK) == (rid & DESC_ID_MASK) and (sv >> DESC_FLAGS_SHIFT) in (
                DESC_COMMITTED,
                DESC_FINALIZED,
            ):
                begin = prog.read_u64(d + lpos_off + begin_off)
                nxt = prog.read_u64(d + lpos_off + next_off)
                info = infos + idx * info_size
                ts = prog.read_u64(info + ts_off)
                tlen = prog.read_u16(info + len_off)
                if not begin & 1 and not nxt & 1:
                    b, n = begin & (dsize - 1), nxt & (dsize - 1)
                    if begin // dsize == nxt // dsize:
                        start, blen = b, n - b
                    else:
                        start, blen = 0, n
                    if blen > 8:
                        raw = prog.read(data + start + 8, min(tlen, blen - 8))
                        text = raw.decode("utf-8", "replace")
                        for part in text.split("\n"):
                            lines.append(f"[{ts // 10**9:5d}.{ts % 10**9 // 1000:06d}] {part}")
        except Exception:  # a record in a page the dump does not hold: skip it, keep the rest
            pass
        if (rid & DESC_ID_MASK) == (head_id & DESC_ID_MASK):
            break
        rid = (rid + 1) & DESC_ID_MASK
    return "\n".join(lines) + ("\n" if lines else "")
