"""The proof on the real packages (lab/collect_guest.py): a stock Debian 12 guest with Debian's kdump-tools
crashed (sysrq-c), kdump-tools wrote /var/crash/<stamp>/{dmesg,dump}.<stamp> itself, the guest rebooted into
its first kernel and ktriage-collect.service (installed by `ktriage collect --install`) reported the dump. All
of it read out of the guest's disk image. Expected facts from the kernel's source: sysrq's 'c' handler
(drivers/tty/sysrq.c, sysrq_handle_crash) calls panic("sysrq triggered crash")."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from tests.lab.conftest import lab_cache

MANIFEST = lab_cache() / "collect-guest" / "collect-guest.json"


@pytest.fixture(scope="module")
def out() -> Path:
    if not MANIFEST.exists():
        pytest.skip(f"{MANIFEST} missing: run `python3 lab/collect_guest.py all` (about 15 min, not part of lab.py)")
    return Path(json.loads(MANIFEST.read_text())["out"])


def test_kdump_tools_wrote_its_own_layout(out: Path) -> None:
    (d,) = [p for p in (out / "crash").iterdir() if p.is_dir()]
    assert re.fullmatch(r"\d{12}", d.name)
    names = sorted(p.name for p in d.iterdir())
    assert names == [f"dmesg.{d.name}", f"dump.{d.name}"]
    assert b"sysrq triggered crash" in (d / f"dmesg.{d.name}").read_bytes()


def test_the_unit_reported_the_dump_untouched(out: Path) -> None:
    (d,) = [p for p in (out / "crash").iterdir() if p.is_dir()]
    dump = d / f"dump.{d.name}"
    before = (out / "dump-before.sha256").read_text().split()
    assert before[0] == hashlib.sha256(dump.read_bytes()).hexdigest()
    envs = [json.loads(p.read_text()) for p in sorted((out / "ktriage" / "spool" / "outbox").glob("*.json"))]
    assert len(envs) == 1
    env = envs[0]
    assert env["source"] == "kdump-debian" and env["what"] == f"/var/crash/{d.name}" and env["host"] == "ktriage-guest"
    rep = env["report"]
    inp = rep["inputs"][0]
    assert inp["path"] == f"/var/crash/{d.name}/dump.{d.name}" and inp["format"] == "vmcore" and inp["status"] == "ok"
    # kdump-tools pipes makedumpfile: a flattened dump, read in place (a guest result cached before ktriage did so
    # says it was reassembled with makedumpfile -R)
    assert any("flattened makedumpfile format: " in n for n in inp["notes"])
    assert any("tier: btf" in n for n in inp["notes"])  # a stock kernel without -dbg: the dump's own BTF
    c = rep["crashes"][-1]
    assert c["kind"] == "panic" and "sysrq triggered crash" in c["title"]
    assert "sysrq_handle_crash" in [f["symbol"] for f in c["frames"]]
    state = json.loads((out / "ktriage" / "collect-state.json").read_text())
    assert [v["result"] for k, v in state["handled"].items() if k.startswith(f"/var/crash/{d.name}/dump.")] == [
        "queued"
    ]
    assert os.path.getsize(dump) > 1 << 20
