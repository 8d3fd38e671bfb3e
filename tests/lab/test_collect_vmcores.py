"""`ktriage collect` on the lab's real kdump vmcores laid out as the distributions' kdump writes them.

Debian kdump-tools pipes makedumpfile to stdout and through KDUMP_COMPRESSION (`makedumpfile $MAKEDUMP_ARGS
/proc/vmcore | compress > dump-incomplete.gz`, then `mv` to `dump.<stamp>.gz`): the same pipeline is run
here on the lab's dump (makedumpfile -F, then gzip / lz4). RHEL kdump writes `vmcore` (a kdump-compressed
file) and `vmcore.flat` for SSH targets. No debug info given: the collector reaches the BTF tier from the
dump alone, as on a machine without -dbg packages; with the lab's vmlinux in --debuginfo, the DWARF tier.
The dumps' bytes and mtimes must be the same afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ktriage.cli import main

pytest.importorskip("drgn")


def digest(p: Path) -> tuple[str, int, int]:
    st = os.stat(p)
    return hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def flattened(src: str, dest: Path, compress: list[str] | None) -> bool:
    """`makedumpfile -F -c -d 31 <dump> | <compress>` into dest, as kdump-config does."""
    mk = subprocess.Popen(
        ["makedumpfile", "-F", "-c", "-d", "31", src], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    with open(dest, "wb") as out:
        if compress:
            subprocess.run(compress, stdin=mk.stdout, stdout=out, check=True)
        else:
            shutil.copyfileobj(mk.stdout, out)  # type: ignore[arg-type]
    return mk.wait() == 0 and dest.stat().st_size > 4096


def collect(tmp: Path, *args: str) -> tuple[int, list[dict], str]:
    r = CliRunner().invoke(
        main,
        [
            "collect",
            "--spool",
            str(tmp / "spool"),
            "--state",
            str(tmp / "state.json"),
            "--pstore",
            str(tmp / "none"),
            "--tmp-dir",
            str(tmp),
            *args,
        ],
    )
    envs = [json.loads(p.read_text()) for p in sorted((tmp / "spool" / "outbox").glob("*.json"))]
    return r.exit_code, envs, r.stderr


@pytest.fixture
def tree(lab_scenario, tmp_path: Path) -> Path:  # noqa: ANN001 - lab fixture
    if not shutil.which("makedumpfile"):
        pytest.skip("makedumpfile not installed")
    s = lab_scenario("null-member")
    crash = tmp_path / "crash"
    rh = crash / "127.0.0.1-2026-12-05-14:40:02"
    rh.mkdir(parents=True)
    os.symlink(s["vmcore"], rh / "vmcore")
    for stamp, comp in (("202612051500", None), ("202612051501", ["gzip", "-c"]), ("202612051502", ["lz4", "-c"])):
        if comp and not shutil.which(comp[0]):
            continue
        d = crash / stamp
        d.mkdir()
        ext = {"gzip": ".gz", "lz4": ".lz4"}.get(comp[0] if comp else "", "")
        assert flattened(s["vmcore"], d / f"dump.{stamp}{ext}", comp)
    return tmp_path


def test_every_layout_reaches_the_crash_from_the_dump(tree: Path, lab_scenario) -> None:  # noqa: ANN001
    dumps = sorted(p for p in (tree / "crash").rglob("*") if p.is_file() or p.is_symlink())
    before = {p: digest(p) for p in dumps}
    target = Path(lab_scenario("null-member")["vmcore"])
    target_before = digest(target)
    code, envs, err = collect(tree, "--crash-dir", str(tree / "crash"))
    assert code == 0, err
    assert len(envs) == len(dumps)
    for env in envs:
        rep = env["report"]
        assert rep["inputs"][0]["format"] == "vmcore" and rep["inputs"][0]["status"] == "ok", rep["inputs"]
        assert rep["inputs"][0]["path"].startswith(str(tree / "crash"))  # the dump's own name, not a temp copy
        c = rep["crashes"][-1]
        assert c["kind"] == "null-deref" and c["guilty_frame"] == "crashmod_read_rx_count"
        assert any("tier: btf" in n for n in rep["inputs"][0]["notes"])
        assert c["task"]["comm"] == "sh"
    flat = [e for e in envs if e["source"] == "kdump-debian"]
    assert flat and all(any("read in place" in n for n in e["report"]["inputs"][0]["notes"]) for e in flat)
    assert {p: digest(p) for p in dumps} == before and digest(target) == target_before
    assert not [p for p in tree.iterdir() if p.name.startswith("ktriage-")]  # temporary copies removed


def test_with_the_machines_debug_info_the_dwarf_tier(tree: Path, lab) -> None:  # noqa: ANN001
    dbg = tree / "debug"
    dbg.mkdir()
    os.symlink(lab["vmlinux"], dbg / "vmlinux")
    os.symlink(lab["crashmod_ko"], dbg / "crashmod.ko")
    rh = next((tree / "crash").glob("127.0.0.1-*"))
    code, envs, err = collect(tree, "--crash-dir", str(tree / "crash"), "--debuginfo", str(dbg))
    assert code == 0, err
    (env,) = [e for e in envs if e["what"] == str(rh)]
    c = env["report"]["crashes"][-1]
    member = [f for f in c["findings"] if f["code"] == "vmcore.member"]
    assert member and member[0]["data"]["expression"] == "port->dev->rx_count"
