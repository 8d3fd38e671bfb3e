"""Locate the crash lab (built by `python3 lab/lab.py all`) for the tests in tests/lab/.

The lab lives outside the git tree, in ${KTRIAGE_LAB_CACHE:-~/.cache/ktriage-lab}; `lab.json` in that
folder names the kernel, crashmod.ko and each scenario's console log and vmcore. If the lab has not been
built the tests FAIL (CI must build it); set KTRIAGE_LAB=skip to skip them on a developer machine.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "lab"


def lab_cache() -> Path:
    return Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")


def lab_artifacts() -> dict:
    """The lab manifest (lab.json), or fail/skip with a clear message when the lab was not built."""
    if os.environ.get("KTRIAGE_LAB", "").lower() == "skip":
        pytest.skip("KTRIAGE_LAB=skip: crash lab tests skipped on request")
    manifest = lab_cache() / "lab.json"
    hint = ("the crash lab is not built: run `python3 lab/lab.py all` (about 25 min from scratch, "
            "seconds when cached), or set KTRIAGE_LAB=skip to skip these tests explicitly")
    if not manifest.exists():
        pytest.fail(f"{manifest} missing: {hint}", pytrace=False)
    lab = json.loads(manifest.read_text())
    for key in ("vmlinux", "crashmod_ko"):
        if not Path(lab[key]).exists():
            pytest.fail(f"{lab[key]} missing: {hint}", pytrace=False)
    return lab


def scenario(lab: dict, name: str) -> dict:
    s = lab["scenarios"].get(name)
    if not s or not s.get("ok"):
        pytest.fail(f"lab scenario {name!r} has no good run in {lab_cache()}: run `python3 lab/lab.py all`",
                    pytrace=False)
    return s


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
