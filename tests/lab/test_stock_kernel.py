"""The BTF tier on a real production kernel: Debian 12's stock kernel (linux-image-amd64 -> 6.1.0-<abi>-amd64,
~100k BTF types) with 18 stock modules + crashmod loaded, dumped by QEMU (kdump-zlib, flattened), analyzed with
NO debug info at all (no vmlinux DWARF, no .ko, no debuginfod).

Built by `python3 lab/stock.py all` (lab/README.md, "Stock Debian kernel target"); the manifest is
<cache>/stock.json. Without it these tests FAIL with the command to run, unless KTRIAGE_LAB=skip.

How the expected values were checked by hand (6.1.192-2 / 6.1.0-56-amd64, 2026-11-22):
* BTF types: `bpftool btf dump file <headers>/vmlinux format raw | grep -c '^\\['` on the vmlinux that
  scripts/extract-vmlinux took out of the stock vmlinuz = 100750 (ids 1..100750), the number ktriage reads from the
  dump between __start_BTF and __stop_BTF. test_btf_type_count redoes it when bpftool is installed.
* modules with split BTF: the console's `Modules linked in:` lists the 19 modules of stock.json's "modules" (18
  stock ones from the initramfs' load.list + crashmod), and `readelf -SW X.ko | grep ' .BTF '` finds a .BTF
  section in each of the 19 .ko files in the initramfs.
* member offsets: the console's `Code: ... 48 8b 87 f0 00 00 00 <48> 8b 80 30 0a 00 00` (null-member) and
  `48 8b 87 f0 00 00 00 8b 56 70 <48> 01 90 38 0a 00 00` (netfilter-udp), `pahole -C crashmod_port/crashmod_dev
  crashmod.ko`: dev at 240 (0xf0), rx_count at 2608 (0xa30), rx_bytes at 2616 (0xa38); crashmod.c static_asserts.
* frames: the console's call trace of each oops (crashmod_trigger <- crashmod_write <- proc_reg_write <-
  vfs_write; crashmod_nf_hook <- nf_hook_slow <- __ip_local_out <- ip_send_skb <- udp_send_skb <- udp_sendmsg),
  the hung task's trace in `INFO: task sh:N blocked` (__mutex_lock.constprop.0 <- crashmod_hung_lock).
* tasks: lab/stock-init.sh prints `LAB: tasks before trigger: N` (a /proc glob from PID 1, no fork). The dump
  then holds N + the trigger's task (sh, or udpsend which sh exec'd) [+ the crashmod_holder kthread], plus at
  most a few kworkers started meanwhile: 53+1 -> 55, 53+1 -> 55, 52+2 -> 55 in the measured runs.
* packet: lab/stock-init.sh's `udpsend 127.0.0.1 5555 4789 ktriage-lab` = 20 + 8 + 11 = 39 bytes on lo.
Never addresses, PIDs or CPU numbers (they vary per boot, KASLR).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("drgn")

from tests.lab.conftest import good_run, lab_cache, no_debuginfod, target_manifest  # noqa: E402
from tests.lab.conftest import one_finding as one
from tests.lab.conftest import stack_functions as frames
from tests.lab.conftest import vmcore_findings as findings  # noqa: E402

from ktriage.pipeline import Options, analyze_paths  # noqa: E402

SCENARIOS = ["null-member", "netfilter-udp", "hung-task"]
# hand-checked with bpftool (see above); a newer package must be checked again before it is added here
BTF_TYPES = {"6.1.192-2": 100750}
_REPORTS: dict = {}


@pytest.fixture(scope="module")
def stock() -> dict:
    hint = (
        "the stock Debian kernel target is not built: run `python3 lab/stock.py all` (about 1-2 min from "
        "scratch, seconds when cached), or set KTRIAGE_LAB=skip to skip these tests explicitly"
    )
    return target_manifest("stock.json", hint, ("vmlinuz", "crashmod_ko"))


def scenario(st: dict, name: str) -> dict:
    why = f"stock scenario {name!r} has no good run in {lab_cache()}/stock: run `python3 lab/stock.py all`"
    return good_run(st, name, why, need="vmcore")


@pytest.fixture(scope="module")
def report(stock):
    def get(name: str):
        if name not in _REPORTS:
            with no_debuginfod():
                _REPORTS[name] = analyze_paths([scenario(stock, name)["vmcore"]], Options())  # no --vmlinux/--debuginfo
        return _REPORTS[name]

    return get


def console(st: dict, name: str) -> str:
    return Path(scenario(st, name)["console_log"]).read_bytes().decode("utf-8", "replace")


def test_manifest_is_the_stock_kernel(stock):
    assert re.fullmatch(r"\d+\.\d+\.\d+-\d+-amd64", stock["kernel_release"]), stock["kernel_release"]
    assert stock["kernel_release"] == stock["abi"] + "-amd64"
    assert Path(stock["module_dir"], "modules.dep").exists()  # depmod -b ran
    assert {"crashmod", "qemu_fw_cfg", "nf_conntrack", "nf_tables", "virtio_net"} <= set(stock["modules"])
    # crashmod.ko was built against the stock headers with split BTF (Makefile.modfinal: pahole --btf_base vmlinux)
    r = subprocess.run(["readelf", "-SW", stock["crashmod_ko"]], capture_output=True, text=True)
    assert " .BTF " in r.stdout
    r = subprocess.run(["modinfo", "-F", "vermagic", stock["crashmod_ko"]], capture_output=True, text=True)
    assert r.stdout.split()[0] == stock["kernel_release"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_btf_tier_on_the_stock_kernel(stock, report, name):
    rep = report(name)
    assert rep.inputs[0].status == "ok", rep.inputs[0].notes
    fs = findings(rep)
    crash = fs["_crash"]
    assert crash.system["DEBUGINFO"] == "btf"
    assert crash.system["RELEASE"] == stock["kernel_release"]
    assert one(fs, "vmcore.sys").data["DEBUGINFO"] == "btf"
    miss = one(fs, "vmcore.debuginfo-missing")
    assert miss.data["tier"] == "btf" and any(m.startswith("vmlinux (build id ") for m in miss.data["missing"])
    notes = " ".join(rep.inputs[0].notes)
    assert "flattened makedumpfile format: read in place" in notes, notes  # QEMU's kdump-zlib output
    m = re.search(
        r"BTF from the dump: (\d+) types \(([\d.]+) MB\) between __start_BTF and __stop_BTF, "
        r"(\d+) module\(s\) with split BTF",
        notes,
    )
    assert m, notes
    assert int(m.group(1)) > 90_000  # a distribution kernel, not the lab's small one
    if stock["package_version"] in BTF_TYPES:
        assert int(m.group(1)) == BTF_TYPES[stock["package_version"]]
    # every loaded module (18 stock + crashmod) has split BTF and was read from the kernel's btf_modules list
    assert int(m.group(3)) == len(stock["modules"]) == 19
    assert "(none for:" not in notes and "split BTF unreadable" not in notes, notes
    assert "stacks unwound by drgn from the kernel's own tables" in notes and "no stack unwinding" not in notes
    assert not [r for r in fs["_skipped"].values() if r.startswith("internal error")], fs["_skipped"]
    assert all(f["source"] == "" for f in one(fs, "vmcore.stack").data["frames"])  # no lines without DWARF


def test_crashmod_split_btf_read_from_the_dump(stock):
    """crashmod among the modules whose split BTF the tier read, and its types resolvable by name."""
    from ktriage.vmcore import VmcoreSession, _read_vmcoreinfo, load_debug_info, open_program

    notes: list[str] = []
    prog, tmp = open_program(scenario(stock, "null-member")["vmcore"], notes)
    try:
        s = VmcoreSession("vmcore", prog, notes=notes)
        _read_vmcoreinfo(s)
        load_debug_info(s, None, [])
        assert s.tier == "btf", s.notes
        assert "crashmod" in s.btf.modules_with_btf and not s.btf.modules_without_btf
        assert set(s.btf.modules_with_btf) == set(stock["modules"])
        port = prog.type("struct crashmod_port")
        assert {mm.name: mm.offset for mm in port.members}["dev"] == 0xF0
        dev = prog.type("struct crashmod_dev")
        offs = {mm.name: mm.offset for mm in dev.members}
        assert (offs["rx_count"], offs["rx_bytes"]) == (0xA30, 0xA38)
        assert prog.type("struct sk_buff").size > 200  # a vmlinux type, from the ~100k-type base BTF
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def test_btf_type_count(stock, report):
    """Independent count of the kernel's BTF types with bpftool, on the vmlinux extracted from the stock vmlinuz."""
    vmlinux = stock.get("vmlinux_no_debuginfo")
    if not shutil.which("bpftool") or not vmlinux or not Path(vmlinux).exists():
        pytest.skip("bpftool (apt package bpftool) or the extracted vmlinux missing: count checked by hand only")
    raw = subprocess.run(
        ["bpftool", "btf", "dump", "file", vmlinux, "format", "raw"], capture_output=True, text=True
    ).stdout
    want = sum(1 for line in raw.splitlines() if line.startswith("["))
    notes = " ".join(report("null-member").inputs[0].notes)
    assert f"BTF from the dump: {want} types" in notes, notes


def test_null_member(stock, report):
    fs = findings(report("null-member"))
    crash = fs["_crash"]
    assert crash.kind == "null-deref"
    st = one(fs, "vmcore.stack")
    assert st.data["comm"] == "sh"
    fault = st.data["frames"][st.data["faulting_frame"]]
    assert (fault["function"], fault["module"], fault["interrupted"]) == ("crashmod_read_rx_count", "crashmod", True)
    assert st.data["registers"]["rax"] == 0
    # QEMU dumps hold the registers at dump time: panic's delay loop first, then the exception frames
    fr = frames(fs)
    assert "panic" in fr[: st.data["faulting_frame"]]
    after = fr[st.data["faulting_frame"] :]
    assert after[:5] == ["crashmod_read_rx_count", "crashmod_trigger", "crashmod_write", "proc_reg_write", "vfs_write"]
    m = one(fs, "vmcore.member")
    assert m.data["expression"] == "port->dev->rx_count"
    assert (m.data["type"], m.data["inner_type"]) == ("struct crashmod_port *", "struct crashmod_dev")
    assert (m.data["offset"], m.data["inner_offset"]) == (0xF0, 0xA30)
    race = one(fs, "vmcore.race")
    assert race.data["member"] == "dev" and race.data["now"] == 0 and race.data["changed"] is False
    assert one(fs, "vmcore.pointers").data["registers"]["RDI"]["slab"]["allocated"] is True


def test_netfilter_udp(stock, report):
    fs = findings(report("netfilter-udp"))
    st = one(fs, "vmcore.stack")
    assert st.data["comm"] == "udpsend"
    fault = st.data["frames"][st.data["faulting_frame"]]
    assert (fault["function"], fault["module"], fault["interrupted"]) == ("crashmod_account_skb", "crashmod", True)
    after = frames(fs)[st.data["faulting_frame"] :]
    want = [
        "crashmod_account_skb",
        "crashmod_nf_hook",
        "nf_hook_slow",
        "__ip_local_out",
        "ip_send_skb",
        "udp_send_skb",
        "udp_sendmsg",
    ]
    assert after[: len(want)] == want
    m = one(fs, "vmcore.member")
    assert m.data["expression"] == "port->dev->rx_bytes"
    assert (m.data["offset"], m.data["inner_offset"]) == (0xF0, 0xA38)
    skb = one(fs, "vmcore.skb")
    assert (skb.data["ip_protocol"], skb.data["sport"], skb.data["dport"]) == ("UDP", 5555, 4789)
    assert (skb.data["saddr"], skb.data["daddr"], skb.data["dev"]) == ("127.0.0.1", "127.0.0.1", "lo")
    assert skb.data["len"] == 20 + 8 + len("ktriage-lab")
    assert "register" in skb.evidence[0]
    sk = next(f for f in fs["vmcore.sock"] if f.data["var"].endswith("->sk"))
    assert (sk.data["family"], sk.data["protocol"], sk.data["sport"]) == ("AF_INET", "UDP", 5555)
    # no cache name: the stock kernel merges slab caches (no slab_nomerge, as in production) and the UDP socket
    # cache was merged into another 1152-byte cache (signal_cache in the measured run)
    assert sk.data["slab"]["allocated"] is True and sk.data["slab"]["offset"] == 0


def test_hung_task(stock, report):
    fs = findings(report("hung-task"))
    assert fs["_crash"].kind == "hung-task"
    st = one(fs, "vmcore.stack")
    assert st.data["comm"] == "khungtaskd"
    fr = frames(fs)
    # kallsyms names the cold part as its own symbol (watchdog.cold: check_hung_uninterruptible_tasks inlined)
    assert "panic" in fr and {"watchdog", "watchdog.cold"} & set(fr) and "kthread" in fr
    h = one(fs, "vmcore.hung")
    sh = next(t for t in h.data["tasks"] if "crashmod_hung_lock" in t["stack"])
    assert sh["comm"] == "sh" and any(n.startswith("__mutex_lock") for n in sh["stack"])
    assert sh["stack"][sh["stack"].index("crashmod_hung_lock") + 1] == "crashmod_trigger"
    assert sh["mutex"] == "crashmod_mutex"
    assert sh["owner"]["comm"] == "crashmod_holder" and sh["owner"]["state"] == "S"
    assert "crashmod_holder_fn" in sh["owner"]["stack"] and "msleep_interruptible" in sh["owner"]["stack"]
    assert sh["waited_s"] >= 5  # hung_task_timeout_secs=5


@pytest.mark.parametrize(
    "name,extra", [("null-member", ["sh"]), ("netfilter-udp", ["udpsend"]), ("hung-task", ["sh", "crashmod_holder"])]
)
def test_tasks(stock, report, name, extra):
    """crash `ps` from the dump alone, against the count /init printed just before the trigger."""
    t = one(findings(report(name)), "vmcore.tasks").data
    assert t["unreadable"] == 0
    assert t["count"] == sum(t["states"].values()) == len(t["tasks"])
    before = int(re.search(r"LAB: tasks before trigger: (\d+)", console(stock, name)).group(1))
    assert before + len(extra) <= t["count"] <= before + len(extra) + 3, (before, t["count"])
    comms = [x["comm"] for x in t["tasks"]]
    for c in extra:
        assert c in comms
    assert any(x["pid"] == 1 and x["comm"] == "init" for x in t["tasks"])
    assert {"kthreadd", "khungtaskd", "ksoftirqd/0"} <= set(comms)
    if name == "hung-task":
        assert t["states"].get("D") == 1
        d = next(x for x in t["tasks"] if x["state"] == "D")
        assert d["comm"] == "sh" and "crashmod_hung_lock" in d["stack"]
    else:
        assert "D" not in t["states"]


def test_cli_json(stock):
    """The same through the CLI: `ktriage analyze VMCORE --format json`, schema ktriage.report/1."""
    env = {k: v for k, v in os.environ.items() if k != "DEBUGINFOD_URLS"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ktriage.cli",
            "analyze",
            scenario(stock, "netfilter-udp")["vmcore"],
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-400:]
    out = json.loads(r.stdout)
    assert out["schema"] == "ktriage.report/1"
    cr = out["crashes"][-1]
    assert cr["system"]["DEBUGINFO"] == "btf"
    codes = {f["code"]: f for f in cr["findings"]}
    assert codes["vmcore.member"]["data"]["expression"] == "port->dev->rx_bytes"
    assert (codes["vmcore.skb"]["data"]["sport"], codes["vmcore.skb"]["data"]["dport"]) == (5555, 4789)


def test_packet_conntrack_on_the_stock_kernel(stock, report):
    """The stock kernel's nf_conntrack.ko (types from its split BTF, no debug info): the UDP packet's new,
    unconfirmed nf_conn, both tuples, and its namespace (CONFIG_NET_NS: ct_net is &init_net)."""
    ct = one(findings(report("netfilter-udp")), "vmcore.conntrack")
    o = ct.data["original"]
    assert (o["protocol"], o["src"], o["sport"], o["dst"], o["dport"]) == ("udp", "127.0.0.1", 5555, "127.0.0.1", 4789)
    assert (ct.data["reply"]["sport"], ct.data["reply"]["dport"]) == (4789, 5555)
    assert ct.data["confirmed"] is False and ct.data["ctinfo"] == "IP_CT_NEW"
    assert ct.data["slab"]["cache"] == "nf_conntrack" and ct.data["slab"]["typesafe_by_rcu"] is True
    assert ct.data["net_name"] == "init_net"
