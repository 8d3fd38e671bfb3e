"""arm64 vmcores: QEMU dumps (dump-guest-memory ELF, VMCOREINFO through the guest's fw_cfg driver) of the arm64
lab kernel, analyzed with no debug info (BTF tier: types from the dump's BTF, frames by frame pointers) and with
the arm64 vmlinux + crashmod.ko DWARF. Build-independent facts only.

Hand checks (lab/crashmod/crashmod.c, tests/fixtures/lab-arm64/*.console.log): the oops' `pc :` is
crashmod_read_rx_count / crashmod_account_skb; the exception entry is `el1h_64_sync`; the hung task is the
trigger process blocked in crashmod_hung_lock on crashmod_mutex, held by the crashmod_holder kthread.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("drgn")

from tests.lab.conftest import good_run  # noqa: E402
from tests.lab.conftest import one_finding as one  # noqa: E402
from tests.lab.conftest import stack_functions as frames
from tests.lab.conftest import vmcore_findings as findings

from ktriage.pipeline import Options, analyze_paths  # noqa: E402

_REPORTS: dict = {}


@pytest.fixture(scope="module")
def a64(lab) -> dict:
    a = lab.get("arm64")
    if not a:
        pytest.fail("the arm64 lab is not in lab.json: run `python3 lab/lab.py arm64`", pytrace=False)
    return a


def _dump(a64: dict, name: str) -> str:
    why = f"arm64 scenario {name!r} has no QEMU dump: run `python3 lab/lab.py arm64 {name}`"
    return str(good_run(a64, name, why, need="qemu_elf")["qemu_elf"])


def _report(a64: dict, name: str, dwarf: bool):
    key = (name, dwarf)
    if key not in _REPORTS:
        opts = (
            Options(vmlinux=a64["vmlinux"], debuginfo_dirs=[str(Path(a64["crashmod_ko"]).parent)])
            if dwarf
            else Options()
        )
        _REPORTS[key] = analyze_paths([_dump(a64, name)], opts)
    return _REPORTS[key]


@pytest.mark.parametrize(
    "name,func", [("null-member", "crashmod_read_rx_count"), ("netfilter-udp", "crashmod_account_skb")]
)
def test_btf_tier_finds_the_faulting_frame(a64, name, func):
    rep = _report(a64, name, dwarf=False)
    assert rep.inputs[0].status == "ok", rep.inputs[0].notes
    fs = findings(rep)
    assert fs["_crash"].system["DEBUGINFO"] == "btf" and fs["_crash"].arch == "arm64"
    notes = " ".join(rep.inputs[0].notes)
    assert "1 module(s) with split BTF" in notes and "no stack unwinding" not in notes
    st = one(fs, "vmcore.stack")
    names = frames(fs)
    assert names[st.data["faulting_frame"]] == func
    assert names.index("el1h_64_sync") + 1 == names.index(func)  # reached through the exception frame
    assert "panic" in names[: st.data["faulting_frame"]]  # QEMU dumps: registers at dump time, in panic
    # frame pointers lead on past the module (a leaf's own caller is skipped: the leaf keeps no frame record)
    assert "vfs_write" in names or "nf_hook_slow" in names
    assert one(fs, "vmcore.tasks").data["count"] >= 20
    assert not [r for r in fs["_skipped"].values() if r.startswith("internal error")], fs["_skipped"]
    # the dump-side instruction walk is x86_64-only and says so (the log-level arm64 analysis names the access)
    assert "x86_64 only" in fs["_skipped"]["vmcore.member"]
    assert "insn.bad-access" in fs


def test_btf_tier_hung_task_lock_owner(a64):
    fs = findings(_report(a64, "hung-task", dwarf=False))
    assert fs["_crash"].kind == "hung-task"
    h = one(fs, "vmcore.hung")
    t = next(x for x in h.data["tasks"] if "crashmod_hung_lock" in x["stack"])
    assert t["mutex"] == "crashmod_mutex" and t["owner"]["comm"] == "crashmod_holder"
    # the blocked trigger is in D; a boot-time kworker may be too (one QEMU dump caught kworker/1:2 in flush_work)
    tasks = one(fs, "vmcore.tasks").data
    assert tasks["states"].get("D", 0) >= 1
    assert any(x["state"] == "D" and "crashmod_hung_lock" in x["stack"] for x in tasks["tasks"])


def test_dwarf_tier_lines_on_arm64(a64):
    """With the arm64 DWARF: source lines; the trace stops at the leaf function drgn cannot unwind out of with
    CFI (kernel_frames cuts the repetition instead of 1024 copies)."""
    fs = findings(_report(a64, "null-member", dwarf=True))
    assert fs["_crash"].system["DEBUGINFO"] == "dwarf"
    st = one(fs, "vmcore.stack")
    fault = st.data["frames"][st.data["faulting_frame"]]
    assert fault["function"] == "crashmod_read_rx_count" and fault["source"].endswith("crashmod.c:91")
    assert len(st.data["frames"]) < 64
