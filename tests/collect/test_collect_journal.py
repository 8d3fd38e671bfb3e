"""The previous boot's kernel journal. No machine running these tests has a crashed previous boot, so a
`journalctl` placed first on PATH plays that machine's: it checks it is asked exactly `-k -b -1 -o export`
and prints journal export records (the format of systemd's journal-export docs: FIELD=value lines, records
separated by a blank line) carrying the lab's real console log of the warn scenario."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from .helpers import crashed_kernel_log
from .test_collect_sources import outbox, run, said

BOOT = "2f4e8bd9a0c14e6f9b3c2d1e0f9a8b7c"


def fake_journalctl(tmp: Path) -> Path:
    records = []
    for i, line in enumerate(crashed_kernel_log("warn").splitlines()):
        msg = line.split("] ", 1)[1] if "] " in line else line
        records.append(
            f"__CURSOR=s=1;i={i}\n__REALTIME_TIMESTAMP={1796500000000000 + i}\n_BOOT_ID={BOOT}\n"
            f"_TRANSPORT=kernel\nPRIORITY=4\nSYSLOG_IDENTIFIER=kernel\nMESSAGE={msg}\n"
        )
    export = tmp / "export.txt"
    export.write_text("\n".join(records) + "\n")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "journalctl"
    exe.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-k -b -1 -o export --no-pager" ] || { echo "unexpected: $*" >&2; exit 1; }\n'
        f"cat {export}\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_previous_boot_journal_once_per_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{fake_journalctl(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    common = ["--crash-dir", str(tmp_path / "none"), "--pstore", str(tmp_path / "none"), "--journal"]
    code, out, err = run(tmp_path, *common)
    assert code == 0, err
    (env,) = outbox(tmp_path)
    assert env["source"] == "journal" and env["what"] == f"journal of boot {BOOT}"
    c = env["report"]["crashes"][-1]
    assert c["kind"] == "warning" and c["guilty_frame"] == "crashmod_warn"
    code, out, _ = run(tmp_path, *common)
    assert code == 0 and not said(out, "found")  # the same boot is not read twice


def test_without_journalctl_the_journal_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, out, _ = run(tmp_path, "--crash-dir", str(tmp_path / "none"), "--pstore", str(tmp_path / "n"), "--journal")
    assert code == 0 and outbox(tmp_path) == []
