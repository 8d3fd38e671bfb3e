"""With a vmlinux's DWARF given, names come from the dump's BTF first and DWARF is read by address
(ktriage.vmcore.btf_names, ktriage.btf.dwarf_gate): drgn then never builds its DWARF name index.

What must hold, on real dumps of three kernels (the lab's 6.1 x86_64 build, its arm64 build and Debian 11's stock
5.10 with its -dbg vmlinux; 5.10's BTF lacks `vmemmap_populate`, which drgn looks up on every kernel, so 5.10 takes
the plain DWARF path unless a test clears ktriage.vmcore.btf_names.DRGN_PROBES to exercise the gate on it):
* the report is the one plain DWARF gives (`--no-btf`), but for the note that says how names were found;
* every name the gate refused is absent from the plain DWARF program of the same dump too (the refusals are the
  probes drgn's helpers make for what another kernel version has: `vmap_nodes` before 6.9, SLAB's
  `freelist_idx_t`, a non-NUMA kernel's `nr_node_ids`);
* what only DWARF has still comes from DWARF: a module built without BTF (5.10 modules carry none) and a vmlinux
  global that neither BTF nor ktriage's table types.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

drgn = pytest.importorskip("drgn")

from tests.lab.conftest import good_run, target_manifest  # noqa: E402

import ktriage.vmcore as vm  # noqa: E402
from ktriage.btf import dwarf_gate  # noqa: E402
from ktriage.pipeline import Options, analyze_paths  # noqa: E402
from ktriage.render.json_out import render  # noqa: E402
from ktriage.vmcore import btf_names  # noqa: E402

NOTE = "names (types, globals) from the dump's BTF"


def _old510() -> dict:
    m = target_manifest(
        "old510.json", "run `python3 lab/old510.py all` (about 8 min from scratch), or set KTRIAGE_LAB=skip"
    )
    if not m.get("vmlinux_dbg"):
        pytest.skip("the 5.10 -dbg vmlinux was not downloaded (lab/old510.py --no-dbg)")
    return m


def _dump(lab: dict, target: str, name: str) -> tuple[str, str, str]:
    """(vmcore, vmlinux with DWARF, directory of crashmod.ko) of a lab scenario."""
    if target == "x86":
        s = lab["scenarios"][name]
        return s["vmcore"], lab["vmlinux"], str(Path(lab["crashmod_ko"]).parent)
    if target == "arm64":
        a = lab["arm64"]
        s = a["scenarios"][name]
        if not s.get("qemu_elf"):
            pytest.fail(f"arm64 scenario {name} has no QEMU ELF dump: run `python3 lab/lab.py all`", pytrace=False)
        return s["qemu_elf"], a["vmlinux"], str(Path(a["crashmod_ko"]).parent)
    m = _old510()
    s = good_run(m, name, f"5.10 scenario {name!r} has no good run: run `python3 lab/old510.py all`", need="vmcore")
    return s["vmcore"], m["vmlinux_dbg"], str(Path(m["crashmod_ko"]).parent)


def _strip_note(o):
    if isinstance(o, dict):
        return {k: _strip_note(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_strip_note(v) for v in o if not (isinstance(v, str) and v.startswith(NOTE))]
    return o


def _report(core: str, vmlinux: str, ko_dir: str, btf: bool) -> dict:
    opts = Options(vmlinux=vmlinux, debuginfo_dirs=[ko_dir], btf=btf, isolate_dumps=False)
    return json.loads(render(analyze_paths([core], opts)))


CASES = [
    ("x86", "null-member"),
    ("x86", "netfilter-udp"),
    ("x86", "hung-task"),
    ("x86", "synrecv-sk"),
    ("arm64", "netfilter-udp"),
    ("5.10", "null-member"),
    ("5.10", "deadlock"),
]


@pytest.fixture
def gate_on_510(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names from BTF on 5.10 too (drgn's vmemmap_populate probe then goes through the gate to DWARF)."""
    monkeypatch.setattr(btf_names, "DRGN_PROBES", ())


def test_510_takes_the_plain_path(lab):
    """5.10's BTF has no `vmemmap_populate` (pahole wrote no FUNC for __meminit functions): names from BTF would
    build DWARF's index anyway, after the BTF set-up, so the session does not try."""
    core, vmlinux, ko_dir = _dump(lab, "5.10", "null-member")
    s = vm._open_session(core, vmlinux, (ko_dir,), True)
    assert s.tier == "dwarf" and s.dwarf_gate is None and not any(n.startswith(NOTE) for n in s.notes)


@pytest.mark.parametrize(("target", "name"), CASES)
def test_report_equals_plain_dwarf(lab, gate_on_510, target, name):
    core, vmlinux, ko_dir = _dump(lab, target, name)
    names_first = _report(core, vmlinux, ko_dir, btf=True)
    plain = _report(core, vmlinux, ko_dir, btf=False)
    notes = names_first["inputs"][0]["notes"]
    assert any(n.startswith(NOTE) for n in notes), notes
    assert not any(n.startswith(NOTE) for n in plain["inputs"][0]["notes"])
    assert names_first["crashes"][-1]["system"]["DEBUGINFO"] == "dwarf"
    assert _strip_note(names_first) == _strip_note(plain)


class _Recorder:
    """The names the gate refused, kept (the gate itself only counts them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refused: set[tuple[str, object, str]] = set()
        self.gates: list[dwarf_gate.DwarfGate] = []
        types, objects, init = (
            dwarf_gate.DwarfGate.type_finder,
            dwarf_gate.DwarfGate.object_finder,
            dwarf_gate.DwarfGate.__init__,
        )
        rec = self

        def type_finder(gate, prog, kinds, name, filename):
            try:
                return types(gate, prog, kinds, name, filename)
            except LookupError:
                rec.refused.add(("type", frozenset(kinds), name))
                raise

        def object_finder(gate, prog, name, flags, filename):
            try:
                return objects(gate, prog, name, flags, filename)
            except LookupError:
                rec.refused.add(("object", flags, name))
                raise

        def keep(gate, *a, **k):
            init(gate, *a, **k)
            rec.gates.append(gate)

        monkeypatch.setattr(dwarf_gate.DwarfGate, "type_finder", type_finder)
        monkeypatch.setattr(dwarf_gate.DwarfGate, "object_finder", object_finder)
        monkeypatch.setattr(dwarf_gate.DwarfGate, "__init__", keep)


_KEYWORD = {"STRUCT": "struct ", "UNION": "union ", "ENUM": "enum "}


def _dwarf_has(prog, what: str, key, name: str) -> bool:
    try:
        if what == "object":
            prog.object(name, key)
            return True
        for kind in key:
            try:
                prog.type(_KEYWORD.get(kind.name, "") + name)
                return True
            except LookupError:
                continue
    except (LookupError, ValueError):
        pass
    return False


@pytest.mark.parametrize(
    ("target", "name"), [("x86", "netfilter-udp"), ("arm64", "hung-task"), ("5.10", "null-member")]
)
def test_refused_names_are_absent_from_dwarf(lab, monkeypatch, gate_on_510, target, name):
    core, vmlinux, ko_dir = _dump(lab, target, name)
    rec = _Recorder(monkeypatch)
    analyze_paths([core], Options(vmlinux=vmlinux, debuginfo_dirs=[ko_dir], isolate_dumps=False))
    assert rec.gates and rec.refused, "the helpers' probes for other kernel versions reach the gate"
    plain = vm._open_session(core, vmlinux, (ko_dir,), False)
    wrongly = sorted(n for what, key, n in rec.refused if _dwarf_has(plain.prog, what, key, n))
    assert not wrongly, f"refused although DWARF has them: {wrongly}"
    if target != "5.10":  # 5.10's BTF has no FUNC for __meminit vmemmap_populate: drgn's probe for it goes on
        assert rec.gates[0].passed == [], "no name needed DWARF's index"


def test_module_without_btf_and_untyped_global_come_from_dwarf(lab, gate_on_510):
    """5.10: crashmod has no BTF (no btf_modules before 5.11), so its struct is DWARF's; `nr_irqs` is in no table."""
    core, vmlinux, ko_dir = _dump(lab, "5.10", "null-member")
    s = vm._open_session(core, vmlinux, (ko_dir,), True)
    assert s.dwarf_gate is not None and s.tier == "dwarf"
    assert "crashmod" not in s.btf.modules_with_btf
    dev = s.prog.type("struct crashmod_dev")
    assert dev.member("rx_count").offset == 0xA30  # lab/crashmod/crashmod.c: static_assert(offsetof(...) == 0xa30)
    assert "type crashmod_dev" in s.dwarf_gate.passed
    nr_irqs = s.prog["nr_irqs"]
    plain = vm._open_session(core, vmlinux, (ko_dir,), False)
    assert nr_irqs.type_.type_name() == plain.prog["nr_irqs"].type_.type_name() == "int"
    assert nr_irqs.value_() == plain.prog["nr_irqs"].value_() > 0
    with pytest.raises(KeyError):
        s.prog["vmap_nodes"]  # 6.9's; plain DWARF has no such name either
    with pytest.raises(KeyError):
        plain.prog["vmap_nodes"]


def test_module_file_under_another_name_is_still_found(lab, tmp_path):
    """drgn's load_debug_info matches a module's file by build id whatever its name; attaching by name must not
    lose a file given as `--debuginfo crashmod-dbg.ko`."""
    import shutil

    core, vmlinux, ko_dir = _dump(lab, "x86", "null-member")
    renamed = tmp_path / "lab-module-dbg.ko"
    shutil.copyfile(lab["crashmod_ko"], renamed)
    for btf in (True, False):
        s = vm._open_session(core, vmlinux, (str(renamed),), btf)
        assert (s.dwarf_gate is not None) == btf
        assert f"crashmod.ko: {renamed}" in s.loaded, s.loaded
        assert not s.missing
