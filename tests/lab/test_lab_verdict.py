"""On the lab's real kdump vmcores (with the lab's debug info): the verdict states the same conclusion
as the full report (kind, function, member, bug, fix status), and names what the vmcore proved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("drgn")

from tests.verdict_check import check_consistent  # noqa: E402

from ktriage.pipeline import Options, analyze_paths  # noqa: E402
from ktriage.render.json_out import report_dict  # noqa: E402
from ktriage.render.text import render  # noqa: E402
from ktriage.verdict import compose  # noqa: E402


def _scenarios() -> list[str]:
    """Every x86_64 scenario the lab manifest lists (lab/lab.py all), else the README's core set."""
    from tests.lab.conftest import lab_cache

    try:
        return sorted(json.loads((lab_cache() / "lab.json").read_text())["scenarios"])
    except (OSError, ValueError, KeyError):
        return ["null-member", "race-member", "uaf-poison", "oob-small-object", "netfilter-udp", "deadlock"]


@pytest.mark.parametrize("name", _scenarios())
def test_vmcore_verdict_agrees_with_report(lab, lab_scenario, name: str) -> None:
    opts = Options(vmlinux=lab["vmlinux"], debuginfo_dirs=[str(Path(lab["crashmod_ko"]).parent)])
    rep = analyze_paths([lab_scenario(name)["vmcore"]], opts)
    assert rep.crashes
    check_consistent(report_dict(rep)["crashes"], render(rep, color=False))
    cr = rep.crashes[-1]
    v = compose(cr)
    codes = {f.code: f for f in cr.findings}
    if "vmcore.member" in codes:  # the vmcore named the member: the verdict says it, not an offset
        assert v.member == codes["vmcore.member"].data["expression"] and v.member in v.what
    race = codes.get("vmcore.race")
    if race is not None and race.data.get("changed"):
        assert "changed after the CPU read it" in v.what
    if "vmcore.use-after-free" in codes:
        assert "FREE in slab cache" in v.what
    if "vmcore.deadlock" in codes:
        assert "deadlock" in v.what


def test_vmcore_verdicts_name_what_the_dump_proved(lab, lab_scenario) -> None:
    """Facts from lab/README.md's scenario table, not from ktriage's output."""
    opts = Options(vmlinux=lab["vmlinux"], debuginfo_dirs=[str(Path(lab["crashmod_ko"]).parent)])

    def what(name: str) -> str:
        return compose(analyze_paths([lab_scenario(name)["vmcore"]], opts).crashes[-1]).what

    # race-member: crashmod_read_rx_count(port) reads port->dev as NULL while another CPU stores a pointer there
    assert "`port->dev->rx_count`" in what("race-member") and "changed after the CPU read it" in what("race-member")
    # hung-task: kthread crashmod_holder holds crashmod_mutex forever; the writer (sh) blocks in mutex_lock
    assert "waits on mutex crashmod_mutex held by crashmod_holder" in what("hung-task")
    # deadlock: crashmod_a holds mutex crashmod_lock_a and waits for rwsem crashmod_sem_b; crashmod_b the reverse
    dl = what("deadlock")
    assert "crashmod_a[" in dl and "crashmod_b[" in dl and "crashmod_lock_a" in dl and "crashmod_sem_b" in dl
    # oob-small-object: a 64-byte crashmod_req read as a crashmod_sock (reuse_cb at 0x230)
    assert "beyond the 64-byte object in slab cache crashmod_req" in what("oob-small-object")
