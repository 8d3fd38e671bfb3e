"""A kernel before 6.0: Debian 11's stock 5.10 (bullseye linux-image-amd64 -> 5.10.0-<abi>-amd64), in-guest kdump
vmcores (makedumpfile -c -d 31), read on three tiers: DWARF (the -dbg vmlinux + crashmod.ko), System.map + the
dump's BTF, and the dump alone (the kernel's kallsyms tables found in memory + BTF). VMCOREINFO of 5.10 publishes
no kallsyms, which kept such dumps at the raw tier before.

Built by `python3 lab/old510.py all` (lab/README.md, "5.10 target"); manifest <cache>/old510.json. Without it these
tests FAIL with the command to run, unless KTRIAGE_LAB=skip.

Checked by hand (5.10.262-1 / 5.10.0-46-amd64, 2026-12-05):
* the kallsyms tables: `grep kallsyms_ System.map-5.10.0-46-amd64` (the -dbg package's map) gives
  kallsyms_offsets ffffffff81f0cb70, relative_base ...73688, num_syms ...73690, names ...73698, markers
  ffffffff820bc428, token_table ...bca98, token_index ...bce28; the scan found each at that address + the dump's
  KERNELOFFSET; test_tables_found_where_system_map_puts_them redoes it on every dump.
* symbols: `grep -c . System.map` = 103934 lines; kallsyms_num_syms read from the dump = 105158 (kallsyms also
  lists what mksysmap drops, e.g. __crc_ and local labels are not, but __ksymtab_ entries are).
* BTF: 0 VAR records (pahole of bullseye's build wrote no per-cpu variables) and no FUNC for __meminit functions;
  no btf_modules list (module BTF came with CONFIG_DEBUG_INFO_BTF_MODULES in 5.11): crashmod and nf_conntrack have
  no types without their .ko debug info.
* frames and lock facts: the console's oops / `INFO: task sh:N blocked` traces (crashmod_read_rx_count <-
  crashmod_trigger <- crashmod_write <- proc_reg_write <- vfs_write; crashmod_account_skb <- crashmod_nf_hook <-
  nf_hook_slow <- __ip_local_out <- ip_send_skb <- udp_send_skb <- udp_sendmsg); the packet: udpsend's 11-byte
  payload from lab/old510-init.sh = 39 bytes on lo; the conntrack entry: as on 6.1 (crashmod enables conntrack).
Never addresses, PIDs or CPU numbers (they vary per boot, KASLR).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("drgn")

from tests.lab.conftest import (  # noqa: E402
    assert_abba_deadlock,
    assert_no_deadlock,
    assert_uaf_freed_object,
    good_run,
    no_debuginfod,
    target_manifest,
)
from tests.lab.conftest import one_finding as one  # noqa: E402
from tests.lab.conftest import stack_functions as frames  # noqa: E402
from tests.lab.conftest import vmcore_findings as findings  # noqa: E402

from ktriage.pipeline import Options, analyze_paths  # noqa: E402

TIERS = ["dwarf", "system-map", "dump"]
_REPORTS: dict = {}


@pytest.fixture(scope="module")
def old() -> dict:
    return target_manifest(
        "old510.json", "run `python3 lab/old510.py all` (about 8 min from scratch), or set KTRIAGE_LAB=skip"
    )


def scenario(m: dict, name: str) -> dict:
    return good_run(m, name, f"5.10 scenario {name!r} has no good run: run `python3 lab/old510.py all`", need="vmcore")


def options(m: dict, tier: str) -> Options:
    if tier == "dwarf":
        if not m.get("vmlinux_dbg"):
            pytest.skip("the -dbg vmlinux was not downloaded (lab/old510.py --no-dbg)")
        return Options(vmlinux=m["vmlinux_dbg"], debuginfo_dirs=[str(Path(m["crashmod_ko"]).parent)])
    if tier == "system-map":
        if not m.get("system_map"):
            pytest.skip("no real System.map (it comes with the -dbg package)")
        return Options(debuginfo_dirs=[m["system_map"]])  # what `--system-map FILE` passes
    return Options()


@pytest.fixture(scope="module")
def report(old):
    def get(name: str, tier: str):
        key = (name, tier)
        if key not in _REPORTS:
            with no_debuginfod():
                _REPORTS[key] = analyze_paths([scenario(old, name)["vmcore"]], options(old, tier))
        return _REPORTS[key]

    return get


def notes(rep) -> str:  # type: ignore[no-untyped-def]
    return " | ".join(rep.inputs[0].notes)


# --- which source gave the symbols ---------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_symbol_source_and_tier(old, report, tier):
    rep = report("null-member", tier)
    fs = findings(rep)
    n = notes(rep)
    want = {"dwarf": "dwarf", "system-map": "btf", "dump": "btf"}[tier]
    assert fs["_crash"].system["DEBUGINFO"] == want, n
    assert fs["_crash"].system["RELEASE"] == old["kernel_release"]
    if tier == "system-map":
        assert f"symbols from System.map {old['system_map']} (" in n, n
        # the image symbols VMCOREINFO names (x86_64's swapper_pg_dir is init_top_pgt, mem_section a heap pointer)
        assert "checked against VMCOREINFO's _stext, clear_seq, init_top_pgt, init_uts_ns, node_data" in n, n
        assert "symbols from System.map System.map-5.10.0-46-amd64; stacks" in n or old["abi"] != "5.10.0-46", n
    if tier == "dump":
        m = re.search(r"symbols from the kallsyms tables found in the dump's memory \((\d+) symbols", n)
        assert m, n
        assert int(m.group(1)) > 100_000
        assert "symbols from kallsyms tables found in memory; stacks" in n, n
    if tier != "dwarf":
        assert "BTF from the dump:" in n and "stacks unwound by drgn from the kernel's own tables" in n, n
        # what 5.10 lacks, said once: no module BTF (CONFIG_DEBUG_INFO_BTF_MODULES is 5.11+)
        assert "no btf_modules list in this kernel" in n, n
    assert "no kallsyms in VMCOREINFO" not in n


def test_tables_found_where_system_map_puts_them(old):
    """The scan's addresses against the -dbg package's System.map, moved by the dump's KERNELOFFSET."""
    import drgn

    from ktriage.vmcore.kallsyms_scan import find_tables
    from ktriage.vmcore.symbols import parse_system_map

    if not old.get("system_map"):
        pytest.skip("no real System.map (it comes with the -dbg package)")
    smap = {n: a for a, _, n in parse_system_map(old["system_map"])}
    for name in ("null-member", "hung-task"):
        prog = drgn.Program()
        prog.set_core_dump(scenario(old, name)["vmcore"])
        vi = dict(line.split("=", 1) for line in prog["VMCOREINFO"].string_().decode().splitlines() if "=" in line)
        slide = int(vi["KERNELOFFSET"], 16)
        t = find_tables(prog, int(vi["SYMBOL(_stext)"], 16))
        for field in ("offsets", "relative_base", "num_syms", "names", "markers", "token_table", "token_index"):
            assert getattr(t, field) == smap[f"kallsyms_{field}"] + slide, field
        assert t.count == prog.read_u32(t.num_syms)


def test_system_map_of_another_build_is_refused(old):
    """bullseye's previous ABI (another 5.10 build): refused in one line, never used; the dump's own tables win."""
    if not old.get("other_system_map"):
        pytest.skip("no System.map of another build in the cache")
    rep = analyze_paths([scenario(old, "null-member")["vmcore"]], Options(debuginfo_dirs=[old["other_system_map"]]))
    n = notes(rep)
    refused = [x for x in rep.inputs[0].notes if x.startswith(f"System.map {old['other_system_map']} refused")]
    assert len(refused) == 1 and "another build (" in refused[0] and "\n" not in refused[0], n
    # VMCOREINFO's symbols and linux_banner sit at the same addresses in both builds; their text does not
    # (IO_APIC_get_PCI_irq_vector: ffffffff81062a40 in -45's System.map, ffffffff81062a60 in -46's)
    assert re.search(r"\(exported \w+ is at 0x[0-9a-f]+ by it, at 0x[0-9a-f]+ in the dump's export table\)", refused[0])
    assert "symbols from the kallsyms tables found in the dump's memory" in n
    assert findings(rep)["_crash"].system["DEBUGINFO"] == "btf"


def test_debian_placeholder_system_map_is_named(old):
    """Debian's /boot/System.map-<release> is one line pointing at the -dbg package: said, not used."""
    rep = analyze_paths(
        [scenario(old, "null-member")["vmcore"]], Options(debuginfo_dirs=[old["system_map_placeholder"]])
    )
    assert any(
        "a placeholder (Debian ships the real one in the linux-image-<release>-dbg" in x for x in rep.inputs[0].notes
    )


def _session_with_damage(vmcore: str, smap: dict[str, int], symbol: str, data_len: int, given: list[str]):  # type: ignore[no-untyped-def]
    """A session whose memory shows zeros over `symbol`'s table (the dump file is not touched: drgn's memory
    segment added last wins), then the usual debug-info loading."""
    from ktriage.vmcore import VmcoreSession, _read_vmcoreinfo, load_debug_info, open_program

    notes_: list[str] = []
    prog, tmp = open_program(vmcore, notes_)
    s = VmcoreSession("vmcore", prog, notes=notes_, tmpdir=tmp)
    _read_vmcoreinfo(s)
    addr = smap[symbol] + int(s.vmcoreinfo["KERNELOFFSET"], 16) + 4096
    zeros = bytes(data_len)
    prog.add_memory_segment(addr, data_len, lambda a, count, offset, phys: zeros[offset : offset + count])
    load_debug_info(s, None, given)
    return s


@pytest.mark.parametrize(
    "symbol,why",
    [
        ("kallsyms_names", "kallsyms tables not found in the dump's memory: no kallsyms_names/kallsyms_num_syms"),
        ("kallsyms_offsets", "kallsyms tables found in the dump's memory do not agree with the dump ("),
    ],
)
def test_damaged_kallsyms_tables_fall_back_with_a_reason(old, symbol, why):
    if not old.get("system_map"):
        pytest.skip("no real System.map: the damaged region is placed from it")
    from ktriage.vmcore.symbols import parse_system_map

    smap = {n: a for a, _, n in parse_system_map(old["system_map"])}
    s = _session_with_damage(scenario(old, "null-member")["vmcore"], smap, symbol, 64 * 1024, [])
    try:
        assert s.tier == "raw", s.notes
        assert any(x.startswith(why) for x in s.notes), s.notes
        assert any(x.startswith("no kallsyms in VMCOREINFO (kernels before 6.0") for x in s.notes)
    finally:
        shutil.rmtree(s.tmpdir or "/nonexistent", ignore_errors=True)
    # the same damage with the System.map given: the map is checked against VMCOREINFO, not the tables
    s = _session_with_damage(scenario(old, "null-member")["vmcore"], smap, symbol, 64 * 1024, [old["system_map"]])
    try:
        assert s.tier == "btf", s.notes
    finally:
        shutil.rmtree(s.tmpdir or "/nonexistent", ignore_errors=True)


def in_order(want: list[str], got: list[str]) -> None:
    """`want` in `got`, in order, from its start; DWARF adds inlined frames in between (crashmod_null_member
    inlined in crashmod_trigger, pde_write in proc_reg_write), which kallsyms cannot see."""
    assert got[0] == want[0], got
    rest = iter(got[:16])
    assert all(w in rest for w in want), (want, got)


# --- the shared facts on every tier --------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_null_member(old, report, tier):
    fs = findings(report("null-member", tier))
    assert fs["_crash"].kind == "null-deref"
    st = one(fs, "vmcore.stack")
    assert st.data["comm"] == "sh"
    fault = st.data["frames"][st.data["faulting_frame"]]
    assert (fault["function"], fault["module"]) == ("crashmod_read_rx_count", "crashmod")
    after = frames(fs)[st.data["faulting_frame"] :]
    in_order(["crashmod_read_rx_count", "crashmod_trigger", "crashmod_write", "proc_reg_write", "vfs_write"], after)
    assert st.data["registers"]["rax"] == 0
    race = one(fs, "vmcore.race")
    assert race.data["now"] == 0 and race.data["changed"] is False
    if tier == "dwarf":
        m = one(fs, "vmcore.member")
        assert m.data["expression"] == "port->dev->rx_count"
        assert (m.data["offset"], m.data["inner_offset"]) == (0xF0, 0xA30)
    else:  # crashmod's types exist only in its .ko debug info on 5.10 (no module BTF)
        assert fs["_skipped"]["vmcore.member"].endswith(
            ": module crashmod has no BTF in this kernel and no debug info was given, so its types are unknown"
        )
        assert "vmcore.member" not in fs


@pytest.mark.parametrize("tier", TIERS)
def test_packet_and_conntrack(old, report, tier):
    fs = findings(report("netfilter-udp", tier))
    st = one(fs, "vmcore.stack")
    assert st.data["comm"] == "udpsend"
    after = frames(fs)[st.data["faulting_frame"] :]
    in_order(["crashmod_account_skb", "crashmod_nf_hook", "nf_hook_slow", "__ip_local_out", "ip_send_skb"], after)
    skb = one(fs, "vmcore.skb")
    assert (skb.data["ip_protocol"], skb.data["sport"], skb.data["dport"]) == ("UDP", 5555, 4789)
    assert (skb.data["saddr"], skb.data["daddr"], skb.data["dev"]) == ("127.0.0.1", "127.0.0.1", "lo")
    assert skb.data["len"] == 20 + 8 + len("ktriage-lab")
    ct = one(fs, "vmcore.conntrack")
    o = ct.data["original"]
    assert (o["protocol"], o["src"], o["sport"], o["dst"], o["dport"]) == ("udp", "127.0.0.1", 5555, "127.0.0.1", 4789)
    assert (ct.data["reply"]["sport"], ct.data["reply"]["dport"]) == (4789, 5555)
    assert ct.data["confirmed"] is False and ct.data["ctinfo"] == "IP_CT_NEW"
    assert ct.data["slab"]["cache"] == "nf_conntrack" and ct.data["slab"]["typesafe_by_rcu"] is True


@pytest.mark.parametrize("tier", TIERS)
def test_hung_task_lock_owner(old, report, tier):
    fs = findings(report("hung-task", tier))
    assert fs["_crash"].kind == "hung-task"
    h = one(fs, "vmcore.hung")
    sh = next(t for t in h.data["tasks"] if "crashmod_hung_lock" in t["stack"])
    assert sh["comm"] == "sh" and any(n.startswith("__mutex_lock") for n in sh["stack"])
    assert sh["mutex"] == "crashmod_mutex"
    assert sh["owner"]["comm"] == "crashmod_holder" and sh["owner"]["state"] == "S"
    assert "crashmod_holder_fn" in sh["owner"]["stack"]
    assert sh["waited_s"] >= 5  # hung_task_timeout_secs=5
    assert_no_deadlock(fs)


@pytest.mark.parametrize("tier", TIERS)
def test_deadlock_cycle(old, report, tier):
    assert_abba_deadlock(findings(report("deadlock", tier)))


@pytest.mark.parametrize("tier", TIERS)
def test_uaf_freed_object(old, report, tier):
    """5.10 poisons a freed object only with `slub_debug=` on the command line (lab/old510.py, uaf-poison)."""
    fs = findings(report("uaf-poison", tier))
    assert fs["_crash"].kind == "gpf"
    assert_uaf_freed_object(fs)
