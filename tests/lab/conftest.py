"""Locate the crash lab (built by `python3 lab/lab.py all`) for the tests in tests/lab/.

The lab lives outside the git tree, in ${KTRIAGE_LAB_CACHE:-~/.cache/ktriage-lab}; `lab.json` in that
folder names the kernel, crashmod.ko and each scenario's console log and vmcore. If the lab has not been
built the tests FAIL (CI must build it); set KTRIAGE_LAB=skip to skip them on a developer machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "lab"


def lab_cache() -> Path:
    return Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")


def skip_on_request() -> None:
    """KTRIAGE_LAB=skip: a developer without the lab skips every lab test explicitly."""
    if os.environ.get("KTRIAGE_LAB", "").lower() == "skip":
        pytest.skip("KTRIAGE_LAB=skip: crash lab tests skipped on request")


def target_manifest(file: str, hint: str, files: tuple[str, ...] = ()) -> dict:
    """A lab target's manifest (<cache>/FILE: lab.json, stock.json, old510.json), its `files` checked to exist.

    Skips on KTRIAGE_LAB=skip; otherwise a target that was not built FAILS with `hint` (CI must build it)."""
    skip_on_request()
    manifest = lab_cache() / file
    if not manifest.exists():
        pytest.fail(f"{manifest} missing: {hint}", pytrace=False)
    m = json.loads(manifest.read_text())
    for key in files:
        if not Path(m[key]).exists():
            pytest.fail(f"{m[key]} missing: {hint}", pytrace=False)
    return m


def lab_artifacts() -> dict:
    """The lab manifest (lab.json), or fail/skip with a clear message when the lab was not built."""
    hint = (
        "the crash lab is not built: run `python3 lab/lab.py all` (about 25 min from scratch, "
        "seconds when cached), or set KTRIAGE_LAB=skip to skip these tests explicitly"
    )
    return target_manifest("lab.json", hint, ("vmlinux", "crashmod_ko"))


def good_run(manifest: dict, name: str, missing: str, need: str | None = None) -> dict:
    """The manifest's entry for scenario `name` if its run was good (and its `need` file, e.g. "vmcore", exists);
    else the test FAILS with `missing`, which says what to rebuild."""
    s = manifest["scenarios"].get(name)
    if not s or not s.get("ok") or (need is not None and not (s.get(need) and Path(s[need]).exists())):
        pytest.fail(missing, pytrace=False)
    return s


def scenario(lab: dict, name: str) -> dict:
    return good_run(lab, name, f"lab scenario {name!r} has no good run in {lab_cache()}: run `python3 lab/lab.py all`")


@contextmanager
def no_debuginfod() -> Iterator[None]:
    """DEBUGINFOD_URLS unset for the block: nothing may fetch a -dbg vmlinux behind a tier test's back."""
    env_url = os.environ.pop("DEBUGINFOD_URLS", None)
    try:
        yield
    finally:
        if env_url is not None:
            os.environ["DEBUGINFOD_URLS"] = env_url


def analyze_log(log: str, **kw):
    """The first crash of a log through the real pipeline, with Options(**kw)."""
    from ktriage.pipeline import Options, analyze_paths

    rep = analyze_paths([log], Options(**kw))
    assert rep.crashes, f"no crash read from {log}"
    return rep.crashes[0]


def debug_opts(lab: dict) -> dict:
    """Options giving the lab's vmlinux and crashmod.ko (x86 manifest or its "arm64" part)."""
    return {"vmlinux": lab["vmlinux"], "debuginfo_dirs": [str(Path(lab["crashmod_ko"]).parent)]}


def vmcore_findings(rep) -> dict:
    """The last crash's findings by code, plus `_skipped` (analyzer -> reason) and `_crash`."""
    assert len(rep.crashes) >= 1
    cr = rep.crashes[-1]
    out: dict = {}
    for f in cr.findings:
        out.setdefault(f.code, []).append(f)
    out["_skipped"] = {s.analyzer: s.reason for s in cr.skipped}
    out["_crash"] = cr.crash
    return out


def one_finding(fs: dict, code: str):  # type: ignore[no-untyped-def]
    assert code in fs, f"{code} missing; skipped: {fs['_skipped']}"
    return fs[code][0]


def stack_functions(fs: dict) -> list[str]:
    return [f["function"] for f in one_finding(fs, "vmcore.stack").data["frames"]]


def findings_of(cr, code: str) -> list:
    return [f for f in cr.findings if f.code == code]


@pytest.fixture(scope="session")
def lab() -> dict:
    return lab_artifacts()


_PROGRAMS: dict = {}


@pytest.fixture(scope="session")
def lab_program(lab):
    """program(name, which="vmcore"|"qemu_elf") -> drgn.Program with vmlinux + crashmod.ko loaded."""
    drgn = pytest.importorskip("drgn")

    def program(name: str, which: str = "vmcore"):
        s = scenario(lab, name)
        core = s.get(which)
        if not core:
            pytest.fail(f"lab scenario {name!r} has no {which}", pytrace=False)
        if core not in _PROGRAMS:
            if len(_PROGRAMS) >= 3:
                _PROGRAMS.pop(next(iter(_PROGRAMS)))
            prog = drgn.Program()
            prog.set_core_dump(core)
            prog.load_debug_info([lab["vmlinux"], lab["crashmod_ko"]])
            _PROGRAMS[core] = prog
        return _PROGRAMS[core]

    return program


@pytest.fixture(scope="session")
def lab_scenario(lab):
    return lambda name: scenario(lab, name)


# --- facts of the lab scenarios, the same with DWARF and on the btf tier (test_vmcore_analysis, test_btf_tier)


def assert_abba_deadlock(fs: dict) -> None:
    """The lab's ABBA: crashmod_a holds mutex crashmod_lock_a and sleeps in down_write(crashmod_sem_b), which
    crashmod_b holds while it sleeps in mutex_lock(crashmod_lock_a); the writer `sh` queues on crashmod_lock_a
    too (lab/crashmod/crashmod.c, section 11). Every edge is read from the lock's own wait list and owner word."""
    assert fs["_crash"].kind == "hung-task"
    h = one_finding(fs, "vmcore.hung")
    by = {t["comm"]: t for t in h.data["tasks"]}
    assert {"crashmod_a", "crashmod_b", "sh"} <= set(by)
    a, b, sh = by["crashmod_a"], by["crashmod_b"], by["sh"]
    assert "crashmod_take_sem_b" in a["stack"] and "crashmod_take_lock_a" in b["stack"]
    assert a["lock"]["kind"] == "rwsem" and a["rwsem"] == "crashmod_sem_b"
    assert a["owner"]["comm"] == "crashmod_b" and a["owner"]["reader_owned"] is False
    assert b["lock"]["kind"] == "mutex" and b["mutex"] == "crashmod_lock_a" and b["owner"]["comm"] == "crashmod_a"
    assert sh["mutex"] == "crashmod_lock_a" and sh["owner"]["comm"] == "crashmod_a"
    # the mutex's wait list holds both of its sleepers, crashmod_b first (it queued 200 ms before sh)
    assert [w.split("[")[0] for w in b["lock"]["waiters"]] == ["crashmod_b", "sh"]
    assert a["lock"]["owner_word"] & ~3 != 0 and not a["lock"]["owner_word"] & 1  # a writer, not readers
    assert len(h.data["cycles"]) == 1
    dl = one_finding(fs, "vmcore.deadlock")
    assert len(fs["vmcore.deadlock"]) == 1 and dl.confidence == "certain"
    assert sorted(t["comm"] for t in dl.data["tasks"]) == ["crashmod_a", "crashmod_b"]
    waits = {t["comm"]: (t["waits_on"]["kind"], t["waits_on"]["name"], t["held_by"]["comm"]) for t in dl.data["tasks"]}
    assert waits == {
        "crashmod_a": ("rwsem", "crashmod_sem_b", "crashmod_b"),
        "crashmod_b": ("mutex", "crashmod_lock_a", "crashmod_a"),
    }
    assert dl.data["behind"] == [f"sh[{sh['pid']}]"]
    assert "deadlock" in dl.summary.lower() and "crashmod_lock_a" in dl.summary


def assert_uaf_freed_object(fs: dict) -> None:
    """uaf-poison: crashmod_obj_dispatch reads obj->ops (at 0x18) from an object of the named cache crashmod_obj
    after kmem_cache_free(); SLAB_POISON filled it with POISON_FREE, so the loaded pointer is 0x6b6b6b6b6b6b6b6b
    and the next read faults. The object is found in its slab and is free there (lab/crashmod/crashmod.c, section 4)."""
    assert stack_functions(fs)[0] == "crashmod_obj_dispatch"
    uaf = one_finding(fs, "vmcore.use-after-free")
    assert uaf.data["slab"]["cache"] == "crashmod_obj" and uaf.data["slab"]["allocated"] is False
    assert uaf.data["disp"] == 0x18 and uaf.data["used"] == 0x6B6B6B6B6B6B6B6B


def assert_no_deadlock(fs: dict) -> None:
    """The plain hung task: a chain (sh -> crashmod_mutex -> crashmod_holder, sleeping in S) and no cycle."""
    assert one_finding(fs, "vmcore.hung").data["cycles"] == []
    assert "vmcore.deadlock" not in fs


def assert_lab_packet_conntrack(fs: dict) -> None:
    """netfilter-udp enables conntrack first (nf_ct_netns_get), so conntrack's LOCAL_OUT hook (priority -200)
    attached a new nf_conn to the packet before crashmod's hook (0) crashed: unconfirmed (confirmation happens at
    POST_ROUTING), ctinfo IP_CT_NEW, in the SLAB_TYPESAFE_BY_RCU cache nf_conntrack: seed 000's packet state."""
    ct = one_finding(fs, "vmcore.conntrack")
    assert ct.data["original"] == {
        "src": "127.0.0.1",
        "dst": "127.0.0.1",
        "l3": 2,
        "protocol": "udp",
        "sport": 5555,
        "dport": 4789,
    }
    assert (ct.data["reply"]["sport"], ct.data["reply"]["dport"]) == (4789, 5555)
    assert ct.data["confirmed"] is False and "IPS_CONFIRMED" not in ct.data["status_bits"]
    assert ct.data["ctinfo"] == "IP_CT_NEW" and ct.data["use"] >= 1
    assert ct.data["slab"]["cache"] == "nf_conntrack" and ct.data["slab"]["allocated"] is True
    assert ct.data["slab"]["typesafe_by_rcu"] is True
    assert "net" not in ct.data  # the lab kernel has no CONFIG_NET_NS: possible_net_t is empty, nothing to read
    assert "_nfct" in ct.evidence[0]
    skb = one_finding(fs, "vmcore.skb")
    assert skb.data["conntrack"]["flow"] == "udp 127.0.0.1:5555 -> 127.0.0.1:4789"
