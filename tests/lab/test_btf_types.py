"""BTF-built types equal DWARF's: the lab kernel's vmlinux carries both (.BTF made by pahole from the DWARF).

The BTF side is read by ktriage.btf from the vmlinux file's .BTF section (the same bytes the running kernel keeps
between __start_BTF and __stop_BTF); the DWARF side is drgn's own reader on the same file.
"""

from __future__ import annotations

import pytest

drgn = pytest.importorskip("drgn")

from ktriage.btf.drgn_types import BTFTypes  # noqa: E402
from ktriage.btf.reader import BTF  # noqa: E402

STRUCTS = [
    "task_struct",
    "sk_buff",
    "sock",
    "sock_common",
    "request_sock",
    "inet_timewait_sock",
    "net_device",
    "nf_conn",
    "kmem_cache",
    "slab",
    "page",
    "module",
    "mutex",
    "list_head",
    "pt_regs",
    "printk_ringbuffer",
    "cpumask",
    "mm_struct",
    "net",
    "iphdr",
    "udphdr",
    "tcphdr",
    "rq",
    "uts_namespace",
    "pid_namespace",
    "file",
    "inode",
    "dentry",
    "work_struct",
    "timer_list",
    "hrtimer",
]


def _section(path: str, name: str) -> bytes:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        if sec is None:
            pytest.fail(
                f"{path} has no {name} section: the lab kernel must be built with CONFIG_DEBUG_INFO_BTF", pytrace=False
            )
        return sec.data()


@pytest.fixture(scope="module")
def programs(lab, lab_program):
    dwarf = lab_program("null-member")  # the lab vmcore with vmlinux + crashmod.ko DWARF loaded
    btf_prog = drgn.Program(dwarf.platform)
    base = BTF(_section(lab["vmlinux"], ".BTF"))
    types = BTFTypes(btf_prog, base)
    types.add_module(BTF(_section(lab["crashmod_ko"], ".BTF"), base=base, name="crashmod"))
    btf_prog.register_type_finder("ktriage-btf", types.finder, enable_index=0)
    return dwarf, btf_prog


def _layout(t, depth: int = 2):
    """(size, [(member name, bit offset, bit-field size, member type name or nested layout)])."""
    t = t.unqualified()
    while t.kind == drgn.TypeKind.TYPEDEF:
        t = t.type.unqualified()
    if t.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) or depth == 0:
        return t.type_name() if t.kind != drgn.TypeKind.ARRAY else (t.type_name(), t.length)
    return (t.size, [(m.name, m.bit_offset, m.bit_field_size, _layout(m.type, depth - 1)) for m in t.members])


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_layout_equal(programs, name):
    dwarf, btf = programs
    d = dwarf.type(f"struct {name}")
    b = btf.type(f"struct {name}")
    assert b.size == d.size
    assert _layout(b) == _layout(d)


@pytest.mark.parametrize("name", ["crashmod_dev", "crashmod_port", "crashmod_sock", "crashmod_req", "crashmod_obj"])
def test_module_split_btf_layout_equal(programs, name):
    dwarf, btf = programs
    assert _layout(btf.type(f"struct {name}")) == _layout(dwarf.type(f"struct {name}"))


def test_member_offsets_the_analyzers_use(programs):
    """The offsets the lab's scenarios hinge on, checked by hand against `pahole -C crashmod_port/crashmod_dev
    crashmod.ko`: port->dev at 0xf0, dev->rx_count at 0xa30 (the oops' `mov 0xa30(%rax),%rax`)."""
    _dwarf, btf = programs
    assert drgn.offsetof(btf.type("struct crashmod_port"), "dev") == 0xF0
    assert drgn.offsetof(btf.type("struct crashmod_dev"), "rx_count") == 0xA30


@pytest.mark.parametrize(
    "name", ["enum pid_type", "enum zone_type", "enum system_states", "atomic_t", "u64", "size_t", "gfp_t"]
)
def test_other_kinds_equal(programs, name):
    dwarf, btf = programs
    d, b = dwarf.type(name), btf.type(name)
    assert drgn.sizeof(b) == drgn.sizeof(d) and b.kind == d.kind
    if d.kind == drgn.TypeKind.ENUM:
        assert [(e.name, e.value) for e in b.enumerators] == [(e.name, e.value) for e in d.enumerators]


def test_reader_rejects_damaged_blobs(lab):
    from ktriage.btf.reader import BTFError

    data = _section(lab["vmlinux"], ".BTF")
    full = BTF(data)
    assert len(full) > 10000 and full.find("task_struct", {4})  # 4 = BTF_KIND_STRUCT
    for bad, why in (
        (data[: len(data) // 2], "run past the end"),
        (b"\0\0" + data[2:], "not BTF"),
        (data[:10], "too short"),
    ):
        with pytest.raises(BTFError) as e:
            BTF(bad)
        assert why in str(e.value) and "\n" not in str(e.value)


def test_damaged_btf_in_the_dump_falls_back_to_symbols(lab_scenario):
    """BTF pages that read back as garbage: the tier is refused with a one-line reason, the report goes on."""
    from ktriage.vmcore import VmcoreSession, _read_vmcoreinfo, load_debug_info, open_program

    notes: list[str] = []
    prog, _tmp = open_program(lab_scenario("null-member")["vmcore"], notes)
    s = VmcoreSession("vmcore", prog, notes=notes)
    _read_vmcoreinfo(s)
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    start = load_vmlinux_kallsyms(prog).__call__(prog, "__start_BTF", None, True)[0].address
    prog.add_memory_segment(start, 4096, lambda a, count, offset, phys: b"\xff" * count)
    load_debug_info(s, None, [])
    assert s.tier == "symbols"
    assert any(n.startswith("no BTF tier: the kernel's BTF could not be read from the dump (") for n in s.notes), (
        s.notes
    )


def test_kernel_btf_index_from_the_cache_equals_the_scan(lab, tmp_path, monkeypatch):
    """The kernel's BTF index (record offsets, names, enums) is kept in ktriage's per-user cache by the blob's hash:
    read back, it is what scanning the blob gives."""
    from ktriage.btf import reader

    data = _section(lab["vmlinux"], ".BTF")
    assert len(data) >= reader.CACHED_SCAN_BYTES  # a kernel's BTF goes through the cache
    monkeypatch.setenv("KTRIAGE_CACHE_DIR", "off")
    fresh = BTF(data)
    monkeypatch.setenv("KTRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    stored = BTF(data)
    assert len(list((tmp_path / "cache").glob("btf-index-*.pickle"))) == 1
    monkeypatch.setattr(BTF, "_scan", lambda self: pytest.fail("scanned although the cache has it"))
    cached = BTF(data)
    for b in (stored, cached):
        assert b.by_name == fresh.by_name and b.next_id == fresh.next_id
        assert list(b._offsets) == list(fresh._offsets) and list(b.enum_ids) == list(fresh.enum_ids)
    assert cached.record(cached.by_name["task_struct"][0]).name == "task_struct"


@pytest.mark.parametrize("name", ["taint_flags", "__highest_present_section_nr"])
def test_globals_table_entries_read_what_dwarf_reads(lab, lab_program, lab_scenario, name):
    """The BTF tier types these from globals.yaml (pahole wrote no VAR for them): same type and value as DWARF."""
    from ktriage.vmcore import _open_session

    dwarf = lab_program("null-member")
    s = _open_session(lab_scenario("null-member")["vmcore"], None, (), True)
    assert s.tier == "btf"
    got, want = s.prog[name], dwarf[name]
    assert got.type_.type_name() == want.type_.type_name(), (got.type_, want.type_)
    assert got.address_ == want.address_
    if name == "taint_flags":  # kallsyms' extent runs to the next symbol: the padding after the array is not entries
        assert len(got) == len(want) == 19  # TAINT_FLAGS_COUNT in 6.1 (include/linux/panic.h: TAINT_TEST is 18)
        assert [chr(t.c_true.value_()) for t in got] == [chr(t.c_true.value_()) for t in want]
    else:
        assert got.value_() == want.value_() > 0
