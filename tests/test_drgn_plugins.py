"""ktriage.drgn_plugins: drgn's plugin machinery is skipped only when it would load nothing anyway.

The reference for "which drgn plugins are installed" is importlib.metadata, the API drgn itself asks.
"""

from __future__ import annotations

import importlib.metadata
import os

import pytest

pytest.importorskip("drgn")

from ktriage import drgn_plugins as dp  # noqa: E402


def _drgn_entry_points_txt() -> str:
    dist = importlib.metadata.distribution("drgn")
    text = dist.read_text("entry_points.txt")
    assert text, "drgn's distribution declares no entry points"
    return text


def test_names_of_drgns_own_entry_points():
    assert sorted(dp._entry_point_names(_drgn_entry_points_txt())) == sorted(dp._DRGN_OWN)


def test_scan_agrees_with_importlib_metadata():
    """What the cheap scan says about this interpreter's sys.path equals what drgn would find."""
    found = {ep.name for ep in importlib.metadata.entry_points(group="drgn.plugins")}
    assert dp.other_plugins_installed() == bool(found - set(dp._DRGN_OWN))


def _dist(root, name: str, entry_points: str | None) -> None:
    d = root / f"{name}-1.0.dist-info"
    d.mkdir()
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (d / "entry_points.txt").write_text(entry_points)


def _metadata_says(root) -> set[str]:
    """The drgn plugin names importlib.metadata finds in `root` (what drgn's loader would see there)."""
    return {
        ep.name
        for dist in importlib.metadata.distributions(path=[str(root)])
        for ep in dist.entry_points
        if ep.group == "drgn.plugins"
    }


def test_a_third_party_plugin_is_seen_like_importlib_metadata_sees_it(tmp_path):
    _dist(tmp_path, "drgn", _drgn_entry_points_txt())
    _dist(tmp_path, "clitool", "[console_scripts]\nclitool = clitool:main\n")
    _dist(tmp_path, "nothing", None)
    assert _metadata_says(tmp_path) == set(dp._DRGN_OWN)
    assert not dp.other_plugins_installed([str(tmp_path)])
    _dist(tmp_path, "drgn_ctf", "[console_scripts]\nx = y:z\n\n[drgn.plugins]\nctf = drgn_ctf.plugin\n")
    assert _metadata_says(tmp_path) == {*dp._DRGN_OWN, "ctf"}
    assert dp.other_plugins_installed([str(tmp_path)])


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("DRGN_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("DRGN_PLUGINS", raising=False)
    monkeypatch.setattr(dp, "_others", None)
    return monkeypatch


def test_all_disabled_when_no_other_plugin(clean_env):
    clean_env.setattr(dp, "other_plugins_installed", lambda paths=None: False)
    with dp.without_drgn_command_plugins():
        assert os.environ["DRGN_DISABLE_PLUGINS"] == "*"
    assert "DRGN_DISABLE_PLUGINS" not in os.environ


def test_only_drgns_own_disabled_when_another_plugin_exists(clean_env):
    clean_env.setattr(dp, "other_plugins_installed", lambda paths=None: True)
    with dp.without_drgn_command_plugins():
        assert os.environ["DRGN_DISABLE_PLUGINS"] == "builtin_commands,crash_commands"


def test_users_settings_win(clean_env):
    clean_env.setattr(dp, "other_plugins_installed", lambda paths=None: False)
    clean_env.setenv("DRGN_PLUGINS", "mine=/x/mine.py")
    with dp.without_drgn_command_plugins():  # DRGN_PLUGINS asks for entry points by name: keep the scan
        assert os.environ["DRGN_DISABLE_PLUGINS"] == "builtin_commands,crash_commands"
    clean_env.delenv("DRGN_PLUGINS")
    clean_env.setenv("DRGN_DISABLE_PLUGINS", "other")
    with dp.without_drgn_command_plugins():
        assert os.environ["DRGN_DISABLE_PLUGINS"] == "other,builtin_commands,crash_commands"
    assert os.environ["DRGN_DISABLE_PLUGINS"] == "other"


_LAZY = """
import sys
from ktriage.drgn_plugins import lazy_helper_package
lazy_helper_package()
from drgn.helpers.linux.sched import task_cpu
from drgn.helpers.linux import list as list_module
light = sorted(k for k in sys.modules if k.startswith("drgn.helpers.linux."))
from drgn.helpers.linux import for_each_task
import drgn.helpers.linux as package
full = sorted(k for k in sys.modules if k.startswith("drgn.helpers.linux."))
print(len(light), len(full), len(package.__all__), for_each_task.__module__, list_module.__name__)
"""


def test_lazy_helper_package_imports_what_is_used_and_still_offers_everything():
    """drgn's package __init__ imports every helper module; the lazy package defers that to the first use of a
    re-exported name, and then gives exactly what a plain `import drgn.helpers.linux` gives."""
    import subprocess
    import sys

    def run(code: str) -> list[str]:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return r.stdout.split()

    light, full, exported, where, submodule = run(_LAZY)
    plain_modules, plain_exported = run(
        "import sys, drgn.helpers.linux as p; "
        "print(len([k for k in sys.modules if k.startswith('drgn.helpers.linux.')]), len(p.__all__))"
    )
    assert int(light) < int(plain_modules) / 2  # sched and list and what they import, not all of them
    assert (full, exported) == (plain_modules, plain_exported)
    assert where == "drgn.helpers.linux.pid" and submodule == "drgn.helpers.linux.list"
