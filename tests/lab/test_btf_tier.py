"""The BTF tier: every lab vmcore analyzed with NO debug info, from the dump's own BTF, kallsyms and ORC.

The same facts as tests/lab/test_vmcore_analysis.py (which runs with the vmlinux and crashmod.ko DWARF), minus
what only DWARF has: locals, inlined frames, source lines. Build-independent facts only (function, member, cache
names, offsets, ports, comms), never addresses.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("drgn")

from tests.lab.conftest import assert_abba_deadlock, assert_lab_packet_conntrack, assert_no_deadlock  # noqa: E402
from tests.lab.conftest import one_finding as one
from tests.lab.conftest import stack_functions as frames
from tests.lab.conftest import vmcore_findings as findings  # noqa: E402

from ktriage.pipeline import Options, analyze_paths  # noqa: E402

ALL = [
    "null-member",
    "null-member-timer",
    "null-member-work",
    "netfilter-udp",
    "uaf-poison",
    "list-corruption",
    "oob-small-object",
    "hung-task",
    "deadlock",
    "soft-lockup",
    "bug-on",
    "warn",
    "panic",
    "race-member",
    "synrecv-sk",
]
_REPORTS: dict = {}


@pytest.fixture(scope="module")
def report(lab_scenario):
    def get(name: str):
        if name not in _REPORTS:
            _REPORTS[name] = analyze_paths([lab_scenario(name)["vmcore"]], Options())  # no --vmlinux, no --debuginfo
        return _REPORTS[name]

    return get


@pytest.mark.parametrize("name", ALL)
def test_every_scenario_reaches_the_btf_tier(report, name):
    rep = report(name)
    assert rep.inputs[0].status == "ok", rep.inputs[0].notes
    fs = findings(rep)
    crash = fs["_crash"]
    assert one(fs, "vmcore.sys").data["DEBUGINFO"] == "btf"
    for key in ("RELEASE", "CPUS", "MEMORY", "TASKS", "PANIC TASK", "LOAD AVERAGE", "NODENAME"):
        assert key in crash.system, key
    miss = one(fs, "vmcore.debuginfo-missing")
    assert miss.data["tier"] == "btf" and any(m.startswith("vmlinux (build id ") for m in miss.data["missing"])
    notes = " ".join(rep.inputs[0].notes)
    assert "1 module(s) with split BTF" in notes and "no stack unwinding" not in notes, (
        notes
    )  # crashmod.ko's own types, from the dump
    assert "vmcore.stack" in fs and "vmcore.cpus" in fs
    assert not [r for r in fs["_skipped"].values() if r.startswith("internal error")], fs["_skipped"]
    # the globals table is checked against this kernel: the lab config has no CONFIG_NUMA (node_data, nr_node_ids)
    # and no CONFIG_CGROUPS (root_task_group), and says so instead of typing memory that is not there
    assert (
        "globals without a type on this kernel (what reads them is skipped): node_data: not in this kernel's "
        "kallsyms; nr_node_ids: not in this kernel's kallsyms; root_task_group: not in this kernel's kallsyms"
    ) in notes
    # nothing on this tier pretends to have source lines
    assert all(f["source"] == "" for f in one(fs, "vmcore.stack").data["frames"])


@pytest.mark.parametrize(
    "name,context",
    [("null-member", "task stack"), ("null-member-timer", "IRQ/softirq stack"), ("null-member-work", "task stack")],
)
def test_null_member_family(report, name, context):
    fs = findings(report(name))
    st = one(fs, "vmcore.stack")
    fault = st.data["frames"][st.data["faulting_frame"]]
    assert fault["function"] == "crashmod_read_rx_count" and fault["interrupted"]
    assert st.data["registers"]["rax"] == 0
    assert context in {f["stack"] for f in st.data["frames"]}
    if name == "null-member-timer":
        assert "crashmod_timer_fn" in frames(fs) and any("softirq" in f for f in frames(fs))
    if name == "null-member-work":
        assert "process_one_work" in frames(fs) and st.data["comm"].startswith("kworker/")
    if name == "null-member":
        assert st.data["comm"] == "sh" and "vfs_write" in frames(fs)
    # the member, without DWARF: RDI is crashmod_read_rx_count's first parameter (not written before the fault),
    # its BTF prototype says `struct crashmod_port *port`, and crashmod.ko's split BTF gives the members
    m = one(fs, "vmcore.member")
    assert m.data["expression"] == "port->dev->rx_count"
    assert (m.data["offset"], m.data["inner_offset"]) == (0xF0, 0xA30)
    race = one(fs, "vmcore.race")
    assert race.data["member"] == "dev" and race.data["now"] == 0 and race.data["changed"] is False
    assert race.data["slab"]["cache"].startswith("kmalloc-")
    assert one(fs, "vmcore.pointers").data["registers"]["RDI"]["slab"]["allocated"] is True
    assert "need DWARF" in one(fs, "vmcore.args").summary


def test_netfilter_udp_packet_from_registers(report):
    """No frame variables without DWARF: the sk_buff is found as a register pointing at an allocated object of
    skbuff_head_cache (as seed 000 found its skb in a saved register)."""
    fs = findings(report("netfilter-udp"))
    assert frames(fs)[0] == "crashmod_account_skb" and "nf_hook_slow" in frames(fs)
    skb = one(fs, "vmcore.skb")
    assert (skb.data["ip_protocol"], skb.data["sport"], skb.data["dport"]) == ("UDP", 5555, 4789)
    assert (skb.data["saddr"], skb.data["daddr"], skb.data["dev"]) == ("127.0.0.1", "127.0.0.1", "lo")
    assert skb.data["len"] == 20 + 8 + len("ktriage-lab")
    assert "register" in skb.evidence[0]
    # the sending socket, as the packet's owner (skb->sk): udpsend's unconnected UDP socket bound to :5555
    sk = next(f for f in fs["vmcore.sock"] if f.data["var"].endswith("->sk"))
    assert (sk.data["family"], sk.data["protocol"], sk.data["slab"]["cache"]) == ("AF_INET", "UDP", "UDP")
    assert one(fs, "vmcore.member").data["expression"] == "port->dev->rx_bytes"


def test_uaf_poison(report):
    fs = findings(report("uaf-poison"))
    assert frames(fs)[0] == "crashmod_obj_dispatch"
    uaf = one(fs, "vmcore.use-after-free")
    assert uaf.data["slab"]["cache"] == "crashmod_obj" and uaf.data["slab"]["allocated"] is False
    assert uaf.data["disp"] == 0x18 and uaf.data["used"] == 0x6B6B6B6B6B6B6B6B


def test_oob_small_object(report):
    fs = findings(report("oob-small-object"))
    assert frames(fs)[0] == "crashmod_sock_release"
    ob = one(fs, "vmcore.object-bounds")
    assert ob.data["cache"] == "crashmod_req" and ob.data["object_size"] == 64
    assert ob.data["offset"] == 0x230 and ob.data["member"] == "reuse_cb"
    assert ob.data["type"] == "struct crashmod_sock" and ob.data["type_size"] > 0x230


def test_hung_task_lock_owner(report):
    fs = findings(report("hung-task"))
    assert one(fs, "vmcore.stack").data["comm"] == "khungtaskd"
    h = one(fs, "vmcore.hung")
    sh = next(t for t in h.data["tasks"] if "crashmod_hung_lock" in t["stack"])
    assert sh["comm"] == "sh" and any("mutex_lock" in n for n in sh["stack"])
    assert sh["mutex"] == "crashmod_mutex"
    assert sh["owner"]["comm"] == "crashmod_holder"


def test_soft_lockup_cpus(report):
    fs = findings(report("soft-lockup"))
    # kallsyms names the cold part of the function as its own symbol (DWARF folds it into watchdog_timer_fn)
    assert {"watchdog_timer_fn", "watchdog_timer_fn.cold"} & set(frames(fs))
    cpus = one(fs, "vmcore.cpus")
    assert any("crashmod_spin" in c["stack"] or c["interrupted_in"] == "crashmod_spin" for c in cpus.data["cpus"])


@pytest.mark.parametrize(
    "name,func",
    [
        ("bug-on", "crashmod_check_state"),
        ("warn", "crashmod_warn"),
        ("panic", "crashmod_panic"),
        ("list-corruption", "crashmod_list_remove"),
    ],
)
def test_assertions(report, name, func):
    assert func in frames(findings(report(name)))


def test_no_btf_flag_falls_back_to_symbols(lab_scenario):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ktriage.cli",
            "analyze",
            lab_scenario("null-member")["vmcore"],
            "--no-btf",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-400:]
    out = json.loads(r.stdout)
    assert out["crashes"][-1]["system"]["DEBUGINFO"] == "symbols"
    assert "vmcore.stack" not in {f["code"] for f in out["crashes"][-1]["findings"]}


def test_dwarf_wins_over_btf(lab, lab_scenario):
    """With the vmlinux given, the DWARF tier runs and BTF is never consulted."""
    from pathlib import Path

    rep = analyze_paths(
        [lab_scenario("null-member")["vmcore"]],
        Options(vmlinux=lab["vmlinux"], debuginfo_dirs=[str(Path(lab["crashmod_ko"]).parent)]),
    )
    assert rep.crashes[-1].crash.system["DEBUGINFO"] == "dwarf"
    assert not any("BTF from the dump" in n for n in rep.inputs[0].notes)


def test_every_task_state_and_stack(report):
    """crash `ps` + `foreach bt` from the dump alone: in the hung-task dump the blocked `sh` is the one D task and
    its stack goes through the mutex slow path into crashmod_hung_lock (lab/crashmod/crashmod.c)."""
    fs = findings(report("hung-task"))
    t = one(fs, "vmcore.tasks")
    assert t.data["states"].get("D") == 1 and t.data["unreadable"] == 0
    assert t.data["count"] == sum(t.data["states"].values()) >= 20
    d = next(x for x in t.data["tasks"] if x["state"] == "D")
    assert d["comm"] == "sh" and "crashmod_hung_lock" in d["stack"]
    assert any(x["comm"] == "crashmod_holder" for x in t.data["tasks"])
    assert any(x["pid"] == 1 for x in t.data["tasks"])


def test_real_race_without_debug_info(report):
    """The race of race-member seen from the dump alone: register 0, memory now a kmalloc-4k crashmod_dev."""
    fs = findings(report("race-member"))
    race = one(fs, "vmcore.race")
    assert race.data["used"] == 0 and race.data["now"] != 0 and race.data["changed"] is True
    assert race.data["member"] == "dev" and "changed after the read" in race.summary


def test_kernel_without_kallsyms_in_vmcoreinfo_finds_them_in_memory(lab_scenario):
    """Kernels before 6.0 publish no kallsyms in VMCOREINFO: a real dump read with those lines removed from the
    parsed VMCOREINFO (what a 5.x kernel writes) finds the kernel's own kallsyms tables in memory instead
    (ktriage.vmcore.kallsyms_scan; the 5.10 target proves it on a 5.10 layout) and reaches the btf tier."""
    from ktriage.vmcore import VmcoreSession, _read_vmcoreinfo, load_debug_info, open_program

    notes: list[str] = []
    prog, _tmp = open_program(lab_scenario("panic")["vmcore"], notes)
    s = VmcoreSession("vmcore", prog, notes=notes)
    _read_vmcoreinfo(s)
    want = {k: int(v, 16) for k, v in s.vmcoreinfo.items() if k.startswith("SYMBOL(kallsyms_")}
    s.vmcoreinfo = {k: v for k, v in s.vmcoreinfo.items() if "kallsyms" not in k}
    load_debug_info(s, None, [])
    assert s.tier == "btf", s.notes
    found = next(n for n in s.notes if n.startswith("symbols from the kallsyms tables found in the dump's memory"))
    # the scan's addresses are the ones this 6.1 kernel itself published in VMCOREINFO
    assert f"token table at {want['SYMBOL(kallsyms_token_table)']:#x}" in found, (found, want)
    assert f"names at {want['SYMBOL(kallsyms_names)']:#x}" in found, (found, want)


def test_qemu_elf_dump_without_debug_info(lab_scenario):
    """QEMU's dump-guest-memory ELF (registers at dump time: the trace starts in the panic path and reaches the
    faulting frame through the exception frame), no debug info: same tier, same member."""
    core = lab_scenario("null-member").get("qemu_elf")
    if not core:
        pytest.skip("null-member has no QEMU ELF dump")
    fs = findings(analyze_paths([core], Options()))
    assert fs["_crash"].system["DEBUGINFO"] == "btf"
    st = one(fs, "vmcore.stack")
    fault = st.data["frames"][st.data["faulting_frame"]]
    assert fault["function"] == "crashmod_read_rx_count" and fault["interrupted"]
    assert st.data["faulting_frame"] > 0  # the panic path sits above it in a dump taken by QEMU
    assert one(fs, "vmcore.member").data["expression"] == "port->dev->rx_count"


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_dump_without_debug_info_is_a_partial_report(lab_scenario, tmp_path, keep):
    """A kdump file cut short (a full /var/crash): no traceback, a partial report that says what was lost. Which tier
    survives depends on where KASLR put the kernel image in physical memory (kdump files are in PFN order)."""
    from pathlib import Path

    src = Path(lab_scenario("null-member")["vmcore"])
    cut = tmp_path / "vmcore"
    cut.write_bytes(src.read_bytes()[: int(src.stat().st_size * keep)])
    rep = analyze_paths([str(cut)], Options())
    rec = rep.inputs[0]
    assert rec.status == "partial" and "\n" not in rec.error and "truncated or corrupt dump" in rec.error
    assert rep.crashes and rep.crashes[-1].crash.source.format == "vmcore"
    assert rep.crashes[-1].crash.system["DEBUGINFO"] in ("raw", "symbols", "btf")
    assert any("could not" in n for n in rec.notes)


def test_request_sock_read_as_full_sock_without_debug_info(report):
    """Seed 004's verdict from the dump alone: RDI points at an allocated request_sock_TCP object whose state is
    TCP_NEW_SYN_RECV; the code read struct sock's sk_socket (0x258) from a 0x128-byte object."""
    fs = findings(report("synrecv-sk"))
    sk = next(f for f in fs["vmcore.sock"] if f.data["state"] == "TCP_NEW_SYN_RECV")
    assert sk.data["really"] == "struct tcp_request_sock" and sk.data["var"].startswith("RDI")
    ob = one(fs, "vmcore.object-bounds")
    assert (ob.data["cache"], ob.data["offset"], ob.data["member"]) == ("request_sock_TCP", 0x258, "sk_socket")
    assert one(fs, "vmcore.member").data["expression"] == "sk->sk_socket->flags"


def test_deadlock_cycle_mutex_and_rwsem(report):
    assert_abba_deadlock(findings(report("deadlock")))


def test_hung_task_without_cycle_is_no_deadlock(report):
    assert_no_deadlock(findings(report("hung-task")))


def test_packet_conntrack(report):
    assert_lab_packet_conntrack(findings(report("netfilter-udp")))
