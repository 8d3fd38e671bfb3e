"""The lab scripts (lab/lab.py, stock.py, old510.py, sharing lab/common.py) name the cache that is there: the build
keys and runs directories they compute from lab/'s sources, every scenario's spec hash, and the manifests they would
write now, byte for byte as lab.json, stock.json and old510.json hold them.

A change to the scripts that moved a key would make `lab/*.py all` rebuild kernels and rerun every scenario (about an
hour): this fails first. Nothing is written to the cache: the manifests are captured (lab.json) or written to a
temporary directory (stock.json, old510.json).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.lab.conftest import REPO, lab_cache, target_manifest

LAB = REPO / "lab"
HINT = "run `python3 lab/lab.py all`, `lab/stock.py all` and `lab/old510.py all`, or set KTRIAGE_LAB=skip"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"lab_script_{name}", LAB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scripts() -> dict[str, ModuleType]:
    """The three scripts as modules (as `python3 lab/X.py` runs them: lab/ first on the path, for `import common`)."""
    sys.path.insert(0, str(LAB))
    try:
        return {name: _load(name) for name in ("lab", "stock", "old510")}
    finally:
        sys.path.remove(str(LAB))
        sys.modules.pop("common", None)


def _text(name: str) -> str:
    return (lab_cache() / name).read_text()


def test_lab_json(lab: dict, scripts: dict[str, ModuleType]) -> None:
    lab_py = scripts["lab"]
    if not glob.glob(os.path.join(lab_cache(), "dl", "linux-source-6.1_*_all.deb")):
        pytest.fail(f"the linux-source .deb is not in {lab_cache()}/dl: {HINT}", pytrace=False)  # or it would download
    assert (lab["kernel_key"], lab["build_key"]) == (lab_py.kernel_key()[1], lab_py.build_key())
    for name, s in lab["scenarios"].items():
        assert s["spec"] == lab_py.spec_hash(name) and lab_py.scenario_done(name), name
    written: dict[str, dict] = {}
    lab_py.update_manifest = lambda section, data: written.setdefault(section or "x86", data)
    lab_py.write_manifest(os.path.dirname(lab["vmlinux"]), lab_py.build_dir())
    want = dict(written["x86"])
    if "arm64" in lab:
        a = lab["arm64"]
        assert (a["kernel_key"], a["build_key"]) == (lab_py.arm64_kernel_key()[1], lab_py.arm64_build_key())
        for name, s in a["scenarios"].items():
            assert s["spec"] == lab_py.arm64_spec_hash(name) and lab_py.arm64_scenario_done(name), f"arm64 {name}"
        lab_py.write_arm64_manifest(
            os.path.dirname(a["vmlinux"]), os.path.join(lab_py.CACHE, "build", lab_py.arm64_build_key())
        )
        want["arm64"] = written["arm64"]
    assert json.dumps(want, indent=1) == _text("lab.json")


def test_stock_json(scripts: dict[str, ModuleType], tmp_path: Path) -> None:
    stock_py = scripts["stock"]
    st = target_manifest("stock.json", HINT)
    ver = st["package_version"]
    assert st["build_key"] == stock_py.build_key(ver)
    for name, s in st["scenarios"].items():
        assert s["spec"] == stock_py.spec_hash(name) and stock_py.scenario_done(ver, name), name
    k = {"release": st["kernel_release"], "version": ver, "abi": st["abi"], "vmlinuz": st["vmlinuz"]}
    k |= {"module_dir": st["module_dir"], "vmlinux": st["vmlinux_no_debuginfo"], "headers": st["headers"]}
    stock_py.MANIFEST = str(tmp_path / "stock.json")
    assert Path(stock_py.write_manifest(k, stock_py.build_dir(ver))).read_text() == _text("stock.json")


def test_old510_json(scripts: dict[str, ModuleType], tmp_path: Path) -> None:
    old_py = scripts["old510"]
    m = target_manifest("old510.json", HINT)
    k = {key: m[key] for key in ("vmlinuz", "system_map_placeholder", "other_system_map", "module_dir")}
    k |= {"release": m["kernel_release"], "version": m["package_version"], "abi": m["abi"]}
    k |= {"system_map": m["system_map"], "vmlinux_dbg": m["vmlinux_dbg"]}
    assert m["build_key"] == old_py.build_key()
    for name, s in m["scenarios"].items():
        assert s["spec"] == old_py.spec_hash(name) and old_py.scenario_done(k, name), name
    old_py.MANIFEST = str(tmp_path / "old510.json")
    bdir = os.path.join(old_py.TOP, m["package_version"], "build", old_py.build_key())
    assert Path(old_py.write_manifest(k, bdir)).read_text() == _text("old510.json")
