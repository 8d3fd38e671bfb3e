"""System.map as the symbol source of a vmcore without kallsyms in VMCOREINFO (kernels before 6.0).

Fixtures (tests/fixtures/system_map/), real files of Debian 11's 5.10.0-46-amd64 (5.10.262-1):
* System.map-5.10.0-46-amd64.excerpt: 132 lines of the real map from linux-image-5.10.0-46-amd64-dbg
  (/usr/lib/debug/boot/System.map-5.10.0-46-amd64): its first 120 lines (per-CPU symbols from 0) and the image
  symbols VMCOREINFO names, `_text`/`_stext` and `linux_banner`, as `grep` gave them.
* System.map-5.10.0-46-amd64.placeholder: /boot/System.map-5.10.0-46-amd64 of linux-image-5.10.0-46-amd64, Debian's
  one-line pointer to the -dbg package.
VMCOREINFO below is the one of a kdump vmcore of that kernel (lab/old510.py, null-member), copied by hand:
SYMBOL(_stext)=ffffffff95a00000 and KERNELOFFSET=14a00000, so _stext (ffffffff81000000 in the map) + the offset
agrees, as do init_uts_ns ffffffff82613700 -> ffffffff97013700 and the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

drgn = pytest.importorskip("drgn")

from ktriage.vmcore.symbols import (  # noqa: E402
    from_system_map,
    image_symbols,
    is_system_map,
    parse_system_map,
    system_map_candidates,
)

FIX = Path(__file__).parent / "fixtures" / "system_map"
EXCERPT = FIX / "System.map-5.10.0-46-amd64.excerpt"
PLACEHOLDER = FIX / "System.map-5.10.0-46-amd64.placeholder"
VMCOREINFO = {
    "OSRELEASE": "5.10.0-46-amd64",
    "SYMBOL(init_uts_ns)": "ffffffff97013700",
    "SYMBOL(node_online_map)": "ffffffff972724a0",
    "SYMBOL(swapper_pg_dir)": "ffffffff9700a000",
    "SYMBOL(_stext)": "ffffffff95a00000",
    "SYMBOL(vmap_area_list)": "ffffffff97148160",
    "SYMBOL(mem_section)": "ffff9382effd5000",
    "SYMBOL(prb)": "ffffffff9705bd40",
    "SYMBOL(printk_rb_static)": "ffffffff9705bd60",
    "SYMBOL(clear_seq)": "ffffffff9855ab30",
    "SYMBOL(init_top_pgt)": "ffffffff9700a000",
    "SYMBOL(node_data)": "ffffffff9726dd20",
    "KERNELOFFSET": "14a00000",
}


def test_parse_real_map():
    rows = parse_system_map(str(EXCERPT))
    assert len(rows) == 132
    by = {n: (a, t) for a, t, n in rows}
    assert by["_stext"] == (0xFFFFFFFF81000000, "T")
    assert by["runqueues"] == (0x33C40, "D")  # a per-CPU offset, never moved by KASLR


def test_image_symbols_leave_out_heap_pointers():
    syms = image_symbols(VMCOREINFO)
    assert "mem_section" not in syms  # SYMBOL(mem_section) is the array's address in the direct map on 5.10
    assert syms["init_uts_ns"] == 0xFFFFFFFF97013700


def test_map_moved_by_kaslr_offset_is_used():
    got, why = from_system_map(str(EXCERPT), drgn.Program(drgn.host_platform), VMCOREINFO)
    assert got is not None, why
    assert "KASLR offset 0x14a00000 from VMCOREINFO" in got.source
    assert "checked against VMCOREINFO's _stext, clear_seq, init_top_pgt, init_uts_ns, node_data" in got.source
    prog = drgn.Program(drgn.host_platform)
    prog.register_symbol_finder("map", got.index, enable_index=0)
    assert prog.symbol("init_uts_ns").address == 0xFFFFFFFF97013700
    assert prog.symbol(0xFFFFFFFF95A00000).name in ("_stext", "_text")
    assert prog.symbol("runqueues").address == 0x33C40


def test_map_of_another_layout_is_refused_in_one_line():
    other = dict(VMCOREINFO, KERNELOFFSET="14c00000")  # the same map read against another slide
    got, why = from_system_map(str(EXCERPT), drgn.Program(drgn.host_platform), other)
    assert got is None
    assert why.startswith(f"System.map {EXCERPT} refused: another build (")
    assert "is at 0x" in why and "in the dump)" in why and "\n" not in why


def test_debian_placeholder_is_named():
    got, why = from_system_map(str(PLACEHOLDER), drgn.Program(drgn.host_platform), VMCOREINFO)
    assert got is None
    assert "a placeholder (Debian ships the real one in the linux-image-<release>-dbg package" in why


def test_candidates_order(tmp_path):
    d = tmp_path / "debug"
    (d / "boot").mkdir(parents=True)
    (d / "boot" / "System.map-5.10.0-46-amd64").write_text("x")
    (d / "vmlinux").write_text("x")
    got = system_map_candidates([str(EXCERPT), str(d)], "0.0.0-not-installed")
    assert got == [str(EXCERPT), str(d / "boot" / "System.map-5.10.0-46-amd64")]
    assert is_system_map("/boot/System.map-6.1.0") and not is_system_map("/boot/vmlinuz-6.1.0")
