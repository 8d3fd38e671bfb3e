"""The parts that touch the system: a full disk, the systemd unit, the config file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import crashed_kernel_log, debian_crash, rhel_crash
from .test_collect_sources import outbox, run, said

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"


@pytest.fixture
def tiny_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 40 KiB tmpfs: room for the state file, not for the reports."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_one_line_each_and_the_rest_still_handled(tmp_path: Path, tiny_fs: Path) -> None:
    crash = tmp_path / "crash"
    debian_crash(crash, "202612051432", crashed_kernel_log("null-member"))
    rhel_crash(crash, "2026-12-05-14:40:02", crashed_kernel_log("bug-on"))
    # fill the disk but for a few KiB: each report (~20 KiB of JSON) no longer fits in the spool
    with open(tiny_fs / "filler", "wb") as f:
        f.write(b"\0" * (32 << 10))
    spool, state = tiny_fs / "spool", tmp_path / "state.json"
    from click.testing import CliRunner

    from ktriage.cli import main

    args = ["collect", "--crash-dir", str(crash), "--pstore", str(tmp_path / "none")]
    args += ["--spool", str(spool), "--state", str(state)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 3, r.output
    errs = [x for x in r.stderr.splitlines() if x]
    assert len(errs) == 2 and all("No space left on device" in x and "analyzed again next time" in x for x in errs)
    assert len(said(r.stdout, "found")) == 2  # both were analyzed; neither marked handled
    assert not state.exists() or "crash" not in state.read_text()
    os.unlink(tiny_fs / "filler")  # room again: the next run queues both
    r = CliRunner().invoke(main, args)  # the same command, run again
    assert r.exit_code == 0 and len(list((spool / "outbox").glob("*.json"))) == 2


def test_install_writes_unit_timer_and_private_config(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "--install", "--install-root", str(tmp_path / "root"))
    assert code == 0
    unit = tmp_path / "root/etc/systemd/system/ktriage-collect.service"
    conf = tmp_path / "root/etc/ktriage/collect.conf"
    assert unit.read_bytes() == (CONTRIB / "ktriage-collect.service").read_bytes()
    assert (os.stat(conf).st_mode & 0o777) == 0o600
    conf.write_text("[collect]\nurl = http://x\ntoken = t\n")
    run(tmp_path, "--install", "--install-root", str(tmp_path / "root"))
    assert "token = t" in conf.read_text()  # an existing config is never overwritten


def test_unit_ordering_and_conditions() -> None:
    text = (CONTRIB / "ktriage-collect.service").read_text()
    after = next(x for x in text.splitlines() if x.startswith("After="))
    for unit in ("kdump.service", "kdump-tools.service", "network-online.target"):
        assert unit in after
    conds = [x.split("=", 1)[1] for x in text.splitlines() if x.startswith("ConditionDirectoryNotEmpty=")]
    assert conds and all(c.startswith("|") for c in conds)  # any one of them triggers the run
    assert "|/var/crash" in conds and "|/sys/fs/pstore" in conds


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    d = tmp_path / "units"
    d.mkdir()
    for n in ("ktriage-collect.service", "ktriage-collect.timer"):
        text = (CONTRIB / n).read_text()
        # verify checks that ExecStart's binary exists: point it at one that does on any machine
        (d / n).write_text(text.replace("/usr/bin/env ktriage", f"{shutil.which('env')} true"))
    r = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(d / n) for n in sorted(os.listdir(d)))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [x for x in r.stderr.splitlines() if "ktriage-collect" in x]
    assert r.returncode == 0 and not problems, r.stderr


def test_config_file_gives_url_token_and_dirs(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    debian_crash(crash, "202612051432", crashed_kernel_log("null-member"))
    conf = tmp_path / "collect.conf"
    conf.write_text(f"[collect]\ncrash_dir = {crash}\npstore = {tmp_path / 'none'}\nhost = db-3\n")
    code, out, _ = run(tmp_path, "--config", str(conf))
    assert code == 0 and len(said(out, "found")) == 1
    assert outbox(tmp_path)[0]["host"] == "db-3"
    code, _, err = run(tmp_path, "--config", str(tmp_path / "missing.conf"))
    assert code == 2 and "no such file" in err
    conf.write_text("[collect]\nurl = http://127.0.0.1:9\n")
    code, _, err = run(tmp_path, "--config", str(conf))
    assert code == 2 and "--submit needs --token" in err
