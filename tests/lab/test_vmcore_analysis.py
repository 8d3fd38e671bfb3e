"""`ktriage analyze VMCORE`: the seeds' crash-session work on the lab's real kdump vmcores.

Only build-independent facts are asserted (function, member and cache names, offsets, ports, comms),
never addresses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("drgn")

from tests.lab.conftest import assert_abba_deadlock, assert_lab_packet_conntrack, assert_no_deadlock  # noqa: E402
from tests.lab.conftest import one_finding as one
from tests.lab.conftest import stack_functions as frames
from tests.lab.conftest import vmcore_findings as findings  # noqa: E402

from ktriage.pipeline import Options, analyze_paths  # noqa: E402

_REPORTS: dict = {}


def _opts(lab, debug: bool = True) -> Options:
    if not debug:
        return Options()
    return Options(vmlinux=lab["vmlinux"], debuginfo_dirs=[str(Path(lab["crashmod_ko"]).parent)])


@pytest.fixture(scope="session")
def report(lab, lab_scenario):
    def get(name: str, debug: bool = True, path: str | None = None):
        key = (name, debug, path)
        if key not in _REPORTS:
            _REPORTS[key] = analyze_paths([path or lab_scenario(name)["vmcore"]], _opts(lab, debug))
        return _REPORTS[key]

    return get


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


@pytest.mark.parametrize("name", ALL)
def test_every_scenario_reads_fully(report, name):
    rep = report(name)
    rec = rep.inputs[0]
    assert rec.status == "ok", rec.notes
    assert rec.format == "vmcore"
    fs = findings(rep)
    crash = fs["_crash"]
    assert crash.source.format == "vmcore"
    assert crash.source.path.endswith("vmcore")
    sysf = one(fs, "vmcore.sys")
    for key in ("RELEASE", "CPUS", "MEMORY", "UPTIME", "TASKS", "DUMPFILE", "PANIC TASK", "LOAD AVERAGE"):
        assert key in crash.system, key
    assert crash.system["RELEASE"].startswith("6.1.")
    assert sysf.data["DEBUGINFO"] == "dwarf"
    assert "vmcore.debuginfo" in fs
    assert "vmcore.stack" in fs and "vmcore.cpus" in fs
    # no analyzer crashed
    assert not [r for r in fs["_skipped"].values() if r.startswith("internal error")], fs["_skipped"]


@pytest.mark.parametrize(
    "name,context",
    [("null-member", "task stack"), ("null-member-timer", "IRQ/softirq stack"), ("null-member-work", "task stack")],
)
def test_null_member_family(report, name, context):
    fs = findings(report(name))
    st = one(fs, "vmcore.stack")
    assert st.data["frames"][st.data["faulting_frame"]]["function"] == "crashmod_read_rx_count"
    assert st.data["frames"][st.data["faulting_frame"]]["interrupted"]
    assert st.data["frames"][0]["source"].endswith("crashmod.c:91")
    assert st.data["registers"]["rax"] == 0
    assert context in {f["stack"] for f in st.data["frames"]}
    if name == "null-member-timer":
        assert "crashmod_timer_fn" in frames(fs) and any("softirq" in f for f in frames(fs))
    if name == "null-member-work":
        assert "process_one_work" in frames(fs) and st.data["comm"].startswith("kworker/")
    if name == "null-member":
        assert st.data["comm"] == "sh" and "vfs_write" in frames(fs)
    m = one(fs, "vmcore.member")
    assert m.data["expression"] == "port->dev->rx_count"
    assert (m.data["offset"], m.data["inner_offset"]) == (0xF0, 0xA30)
    assert m.data["type"] == "struct crashmod_port *"
    race = one(fs, "vmcore.race")
    assert race.data["member"] == "dev" and race.data["disp"] == 0xF0
    assert race.data["now"] == 0 and race.data["changed"] is False
    assert race.data["slab"]["cache"].startswith("kmalloc-") and race.data["slab"]["typesafe_by_rcu"] is False
    ptr = one(fs, "vmcore.pointers")
    assert ptr.data["registers"]["RDI"]["slab"]["allocated"] is True
    args = one(fs, "vmcore.args")
    assert "port" in args.data["frames"][0]["values"]


def test_netfilter_udp_packet(report):
    fs = findings(report("netfilter-udp"))
    assert frames(fs)[0] == "crashmod_account_skb"
    assert "nf_hook_slow" in frames(fs)
    assert one(fs, "vmcore.stack").data["comm"] == "udpsend"
    skb = one(fs, "vmcore.skb")
    assert (skb.data["ip_protocol"], skb.data["sport"], skb.data["dport"]) == ("UDP", 5555, 4789)
    assert (skb.data["saddr"], skb.data["daddr"]) == ("127.0.0.1", "127.0.0.1")
    assert skb.data["len"] == 20 + 8 + len("ktriage-lab")
    assert skb.data["dev"] == "lo" and skb.data["protocol"] == "IPv4"
    assert one(fs, "vmcore.member").data["expression"] == "port->dev->rx_bytes"
    socks = fs.get("vmcore.sock", [])
    assert any(s.data["family"] == "AF_INET" and s.data.get("protocol") == "UDP" for s in socks)
    ptr = one(fs, "vmcore.pointers")
    assert any(d.get("slab", {}).get("cache") == "skbuff_head_cache" for d in ptr.data["registers"].values())


def test_uaf_poison(report):
    fs = findings(report("uaf-poison"))
    assert frames(fs)[0] == "crashmod_obj_dispatch"
    uaf = one(fs, "vmcore.use-after-free")
    assert uaf.data["slab"]["cache"] == "crashmod_obj" and uaf.data["slab"]["allocated"] is False
    assert uaf.data["disp"] == 0x18 and uaf.data["used"] == 0x6B6B6B6B6B6B6B6B
    ptr = one(fs, "vmcore.pointers")
    assert any(
        d.get("slab", {}).get("cache") == "crashmod_obj" and d["slab"]["allocated"] is False
        for d in ptr.data["registers"].values()
    )


def test_oob_small_object(report):
    fs = findings(report("oob-small-object"))
    assert frames(fs)[0] == "crashmod_sock_release"
    ob = one(fs, "vmcore.object-bounds")
    assert ob.data["cache"] == "crashmod_req" and ob.data["object_size"] == 64
    assert ob.data["offset"] == 0x230 and ob.data["member"] == "reuse_cb"
    assert ob.data["type"] == "struct crashmod_sock" and ob.data["type_size"] > 0x230
    assert ob.data["neighbour_allocated"] is False
    assert one(fs, "vmcore.member").data["expression"] == "sk->reuse_cb->count"
    assert one(fs, "vmcore.race").data["member"] == "reuse_cb"


def test_list_corruption(report):
    fs = findings(report("list-corruption"))
    assert "crashmod_list_remove" in frames(fs)
    assert fs["_crash"].kind == "list-corruption"


def test_hung_task(report):
    fs = findings(report("hung-task"))
    assert one(fs, "vmcore.stack").data["comm"] == "khungtaskd"
    assert "check_hung_uninterruptible_tasks" in frames(fs)
    h = one(fs, "vmcore.hung")
    sh = next(t for t in h.data["tasks"] if "crashmod_hung_lock" in t["stack"])
    assert sh["comm"] == "sh"
    assert any("mutex_lock" in n for n in sh["stack"])
    assert sh["mutex"] == "crashmod_mutex"
    assert sh["owner"]["comm"] == "crashmod_holder" and sh["owner"]["state"] in ("S", "D")
    assert sh["waited_s"] is None or sh["waited_s"] >= 5
    assert any("crashmod_holder" in c for c in h.data["chains"])
    tasks = one(fs, "vmcore.tasks")
    assert tasks.data["states"].get("D") == 1
    assert any(
        t["comm"] == "sh" and t["state"] == "D" and "crashmod_hung_lock" in t["stack"] for t in tasks.data["tasks"]
    )


def test_soft_lockup(report):
    """The spinning task is on whichever CPU the watchdog blamed, or (SMP) on another CPU that the
    stuck one waits for (stop_machine): vmcore.cpus shows every CPU's current task."""
    fs = findings(report("soft-lockup"))
    assert "watchdog_timer_fn" in frames(fs)
    assert "IRQ/softirq stack" in {f["stack"] for f in one(fs, "vmcore.stack").data["frames"]}
    cpus = one(fs, "vmcore.cpus")
    spinning = [c for c in cpus.data["cpus"] if "crashmod_spin" in c["stack"] or c["interrupted_in"] == "crashmod_spin"]
    assert spinning and spinning[0]["comm"] == "sh"
    assert "crashmod_spin" in cpus.summary
    assert any(c["panic"] for c in cpus.data["cpus"])


@pytest.mark.parametrize(
    "name,func,kind",
    [
        ("bug-on", "crashmod_check_state", "bug"),
        ("warn", "crashmod_warn", "warning"),
        ("panic", "crashmod_panic", "panic"),
    ],
)
def test_assertions(report, name, func, kind):
    fs = findings(report(name))
    assert func in frames(fs)
    assert fs["_crash"].kind == kind
    assert "PANIC" in fs["_crash"].system


def test_without_debuginfo_says_what_is_missing(lab_scenario):
    """The symbols tier (BTF switched off; kernels without BTF land here): log, registers and raw reads only."""
    rep = analyze_paths([lab_scenario("null-member")["vmcore"]], Options(btf=False))
    assert rep.inputs[0].status == "ok"
    fs = findings(rep)
    crash = fs["_crash"]
    # the log is still decoded from the dump (VMCOREINFO's printk layout) and read by the log reader
    assert crash.kind == "null-deref" and crash.ip.symbol == "crashmod_read_rx_count"
    assert crash.source.format == "vmcore"
    assert one(fs, "value.null-offset").data["offset"] == 0xA30
    miss = one(fs, "vmcore.debuginfo-missing")
    assert miss.data["tier"] in ("raw", "symbols")
    assert any(m.startswith("vmlinux (build id ") for m in miss.data["missing"])
    assert crash.system["RELEASE"].startswith("6.1.") and "BUILD-ID" in crash.system
    assert "vmlinux (build id" in fs["_skipped"]["vmcore.stack"]
    assert "vmcore.skb" not in fs and "vmcore.member" not in fs
    # the race check still works from the log's Code:/registers and a raw read of the dump
    race = one(fs, "vmcore.race")
    assert race.data["tier"] in ("raw", "symbols") and race.data["member"] is None
    assert (race.data["from"], race.data["disp"], race.data["register"]) == ("RDI", 0xF0, "RAX")
    assert race.data["now"] == 0 and race.data["changed"] is False


def test_with_debuginfo_adds(report):
    fs = findings(report("null-member"))
    assert "vmcore.debuginfo-missing" not in fs
    assert {"vmcore.stack", "vmcore.pointers", "vmcore.race", "vmcore.member", "vmcore.args"} <= set(fs)


def test_truncated_vmcore_partial_report(lab_scenario, report, tmp_path):
    src = Path(lab_scenario("null-member")["vmcore"])
    cut = tmp_path / "vmcore.half"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    rep = report("null-member", path=str(cut))
    rec = rep.inputs[0]
    assert rec.status in ("partial", "ok")
    assert rep.crashes, "a partial report, not an error"
    if rec.status == "partial":
        assert any("could not" in n for n in rec.notes)


def test_zeroed_pages_vmcore(lab_scenario, report, tmp_path):
    src = Path(lab_scenario("null-member")["vmcore"]).read_bytes()
    data = bytearray(src)
    n = len(data)
    data[n // 4 : n // 4 + n // 4] = b"\0" * (n // 4)
    z = tmp_path / "vmcore.zeroed"
    z.write_bytes(bytes(data))
    rep = report("null-member", path=str(z))
    assert rep.inputs[0].status in ("ok", "partial") and rep.crashes


def test_missing_header_is_one_line_error(lab_scenario, tmp_path):
    src = Path(lab_scenario("null-member")["vmcore"]).read_bytes()
    bad = tmp_path / "vmcore.noheader"
    bad.write_bytes(b"KDUMP   " + b"\0" * 4096 + src[4104:])
    rep = analyze_paths([str(bad)], Options())
    assert rep.inputs[0].status == "error" and "\n" not in rep.inputs[0].error


def _flattened(src: str, flat) -> None:
    """The lab's kdump file re-filtered into makedumpfile's flattened (-F) stream format (skip without it)."""
    if not shutil.which("makedumpfile"):
        pytest.skip("makedumpfile not installed")
    with open(flat, "wb") as out:
        r = subprocess.run(["makedumpfile", "-F", "-d", "31", "-c", src], stdout=out, stderr=subprocess.PIPE)
    if r.returncode != 0 or flat.stat().st_size < 4096:
        pytest.skip(f"makedumpfile -F could not flatten the lab vmcore: {r.stderr.decode()[-200:]}")


def test_flattened_vmcore_read_in_place(lab_scenario, tmp_path, report):
    flat = tmp_path / "vmcore.flat"
    _flattened(lab_scenario("null-member")["vmcore"], flat)
    before = flat.read_bytes()[:64]
    rep = report("null-member", path=str(flat))
    assert rep.inputs[0].status == "ok"
    assert any("read in place" in n for n in rep.inputs[0].notes)
    assert findings(rep)["_crash"].ip.symbol == "crashmod_read_rx_count"
    assert flat.read_bytes()[:64] == before, "input untouched"


def test_flattened_vmcore_reassembled_when_not_read_in_place(lab_scenario, tmp_path, report, monkeypatch):
    """A libkdumpfile that does not take the flattened file (before 0.5.1) leaves makedumpfile -R: same crash."""
    import ktriage.vmcore as V

    flat = tmp_path / "vmcore.flat"
    _flattened(lab_scenario("null-member")["vmcore"], flat)
    real = V._try_open

    def refuse_flat(target, errors):  # type: ignore[no-untyped-def]
        if target == str(flat):
            errors.append("flattened format not supported")
            return None
        return real(target, errors)

    monkeypatch.setattr(V, "_try_open", refuse_flat)
    rep = report("null-member", path=str(flat))
    assert rep.inputs[0].status == "ok"
    assert any("reassembled" in n for n in rep.inputs[0].notes)
    assert findings(rep)["_crash"].ip.symbol == "crashmod_read_rx_count"


def test_cli_json(lab, lab_scenario):
    cmd = [
        sys.executable,
        "-m",
        "ktriage.cli",
        "analyze",
        lab_scenario("netfilter-udp")["vmcore"],
        "--vmlinux",
        lab["vmlinux"],
        "--debuginfo",
        str(Path(lab["crashmod_ko"]).parent),
        "--format",
        "json",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 0, r.stderr[-500:]
    out = json.loads(r.stdout)
    codes = {f["code"] for f in out["crashes"][-1]["findings"]}
    assert {"vmcore.sys", "vmcore.stack", "vmcore.skb", "vmcore.member"} <= codes
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[2] / "src/ktriage/schema/report-1.json").read_text())
    jsonschema.validate(out, schema)


@pytest.mark.parametrize("name,guilty", [("null-member", "crashmod_read_rx_count"), ("panic", "crashmod_panic")])
def test_qemu_elf_dump(report, lab_scenario, name, guilty):
    """QEMU dump-guest-memory ELF: registers at dump time, the trace starts in panic."""
    core = lab_scenario(name).get("qemu_elf")
    if not core:
        pytest.skip(f"{name} has no QEMU ELF dump")
    fs = findings(report(name, path=core))
    st = one(fs, "vmcore.stack")
    names = frames(fs)
    assert guilty in names and "panic" in names
    assert len(names) < 64, "the trace stops at the user-space frame"
    if name == "null-member":
        assert st.data["frames"][st.data["faulting_frame"]]["function"] == guilty
        assert st.data["frames"][st.data["faulting_frame"]]["interrupted"]
        assert one(fs, "vmcore.member").data["expression"] == "port->dev->rx_count"


def _session_and_crash(lab, lab_scenario, name):
    from ktriage.model import InputRecord
    from ktriage.vmcore import read_vmcore, session_for

    gen = read_vmcore(lab_scenario(name)["vmcore"], _opts(lab), InputRecord("x"))
    crash = next(gen)  # the session lives while the generator is not exhausted (as in the pipeline)
    _GENS.append(gen)
    return session_for(crash), crash


_GENS: list = []


def test_session_freed_after_the_last_crash(lab, lab_scenario):
    from ktriage.model import InputRecord
    from ktriage.vmcore import read_vmcore, session_for

    gen = read_vmcore(lab_scenario("panic")["vmcore"], _opts(lab), InputRecord("x"))
    crash = next(gen)
    s = session_for(crash)
    assert s is not None and s.prog is not None and s.is_primary(crash)
    assert list(gen) == []
    assert session_for(crash) is None and s.prog is None


def _overlay(prog, addr: int, data: bytes) -> None:
    """Make the dump show `data` at `addr` (a simulated concurrent write), without touching the file."""
    prog.add_memory_segment(addr, len(data), lambda a, count, offset, phys: data[offset : offset + count])


def test_real_race_memory_changed_after_the_read(report):
    """race-member (lab/crashmod/crashmod.c): the CPU loaded port->dev == NULL and faulted on ->rx_count; a
    kthread on the other CPU stored a freshly kzalloc'ed crashmod_dev (0xa48 bytes: kmalloc-4k) into ->dev once
    the oops began. The dump must show the new pointer where the register holds 0 -- seed 000's signature."""
    fs = findings(report("race-member"))
    race = one(fs, "vmcore.race")
    assert race.data["used"] == 0 and race.data["now"] != 0 and race.data["changed"] is True
    assert (race.data["member"], race.data["var"], race.data["disp"]) == ("dev", "port", 0xF0)
    assert "changed after the read" in race.summary
    assert any("kmalloc-4k" in e and "allocated" in e for e in race.evidence), race.evidence
    assert one(fs, "vmcore.member").data["expression"] == "port->dev->rx_count"
    assert any(t["comm"] == "crashmod_writer" for t in one(fs, "vmcore.tasks").data["tasks"])


def test_real_request_sock_read_as_full_sock(report):
    """synrecv-sk (seed 004's class, on the kernel's own path): a LOCAL_OUT hook reads skb->sk->sk_socket of a
    SYN-ACK; the owner is the listener's request sock (state 12 = TCP_NEW_SYN_RECV, printed by the module before
    the fault), struct tcp_request_sock is 0x128 bytes (pahole/DWARF), sk_socket is at 0x258 of struct sock:
    the read lands in the next, free, object of request_sock_TCP and the pointer found there faults."""
    fs = findings(report("synrecv-sk"))
    assert frames(fs)[0] == "crashmod_sk_socket_flags"
    assert fs["_crash"].kind == "gpf"
    sk = next(f for f in fs["vmcore.sock"] if f.data["state"] == "TCP_NEW_SYN_RECV")
    assert sk.data["really"] == "struct tcp_request_sock" and sk.data["really_size"] == 0x128
    assert sk.data["var"] == "sk" and "not a full sock" in sk.summary
    ob = one(fs, "vmcore.object-bounds")
    assert (ob.data["cache"], ob.data["object_size"], ob.data["offset"]) == ("request_sock_TCP", 0x128, 0x258)
    assert (ob.data["member"], ob.data["type"]) == ("sk_socket", "struct sock")
    assert ob.data["neighbour_allocated"] is False
    assert one(fs, "vmcore.member").data["expression"] == "sk->sk_socket->flags"
    skb = one(fs, "vmcore.skb")
    assert (skb.data["ip_protocol"], skb.data["sport"], skb.data["saddr"]) == ("TCP", 7777, "127.0.0.1")
    assert "IRQ/softirq stack" in {f["stack"] for f in one(fs, "vmcore.stack").data["frames"]}


def test_race_detected_when_memory_changed_after_the_read(lab, lab_scenario):
    """Seed 000: the CPU read ct->ct_net == NULL, the dump shows &init_net: the object changed after the read."""
    from ktriage.pipeline import analyze_crash

    s, crash = _session_and_crash(lab, lab_scenario, "null-member")
    prog = s.prog
    port = prog["crashmod_port"].value_()
    _overlay(prog, port + 0xF0, prog["init_net"].address_.to_bytes(8, "little"))
    fs = {f.code: f for f in analyze_crash(crash, _opts(lab)).findings}
    race = fs["vmcore.race"]
    assert race.data["changed"] is True and race.data["member"] == "dev"
    assert "changed after the read" in race.summary


def test_sock_state_new_syn_recv_is_a_request_sock(lab, lab_scenario):
    from ktriage.vmcore.decoders import decode_sock

    s, _ = _session_and_crash(lab, lab_scenario, "netfilter-udp")
    prog = s.prog
    trace = s.crashed_trace()
    sk = next(f["sk"] for f in trace if "sk" in f.locals() and not f["sk"].absent_ and f["sk"].value_())
    import drgn

    off = drgn.offsetof(prog.type("struct sock_common"), "skc_state")
    _overlay(prog, sk.value_() + off, bytes([12]))
    d = decode_sock(prog, sk)
    assert d["state"] == "TCP_NEW_SYN_RECV" and d["really"] == "struct tcp_request_sock"
    assert d["really_size"] < prog.type("struct sock").size


def test_wrong_vmlinux_is_named(lab, lab_scenario):
    """A debug file that is not the dump's kernel is not used, and the report says so with the build id."""
    rep = analyze_paths([lab_scenario("panic")["vmcore"]], Options(vmlinux=lab["crashmod_ko"]))
    notes = " ".join(rep.inputs[0].notes)
    assert "was not used: it does not match the dump" in notes and "build id" in notes
    fs = findings(rep)
    assert one(fs, "vmcore.debuginfo-missing").data["tier"] == "btf"
    assert fs["_crash"].kind == "panic"


def test_deadlock_cycle_mutex_and_rwsem(report):
    assert_abba_deadlock(findings(report("deadlock")))


def test_hung_task_without_cycle_is_no_deadlock(report):
    assert_no_deadlock(findings(report("hung-task")))


def test_packet_conntrack(report):
    assert_lab_packet_conntrack(findings(report("netfilter-udp")))
