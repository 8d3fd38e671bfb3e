"""`ktriage collect` on /var/crash trees in both kdump layouts and on pstore trees, built in temporary
directories from the lab's real console logs (tests/fixtures/lab). Expected facts are read off those logs:
null-member: "BUG: kernel NULL pointer dereference" with RIP crashmod_read_rx_count (line 229/235);
bug-on: "kernel BUG at lab/crashmod/crashmod.c:282!" with RIP crashmod_check_state (lines 232/235)."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ktriage.cli import main
from ktriage.collect.pstore import find_pstore_dumps

from .helpers import crashed_kernel_log, debian_crash, pstore_parts, rhel_crash, snapshot, write_pstore


def run(tmp: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(
        main,
        ["collect", "--spool", str(tmp / "spool"), "--state", str(tmp / "state.json"), *args],
        catch_exceptions=False,
    )
    return r.exit_code, r.stdout, r.stderr


def said(out: str, word: str) -> list[str]:
    """The output lines of one kind (found, skipped, sent, ...)."""
    return [x for x in out.splitlines() if x.split(" ", 1)[0] == word]


def outbox(tmp: Path) -> list[dict]:
    d = tmp / "spool" / "outbox"
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []


def crash_of(env: dict) -> dict:
    assert env["report"]["schema"] == "ktriage.report/1"
    return env["report"]["crashes"][-1]


@pytest.fixture
def trees(tmp_path: Path) -> Path:
    crash = tmp_path / "crash"
    debian_crash(crash, "202612051432", crashed_kernel_log("null-member"))
    rhel_crash(crash, "2026-12-05-14:40:02", crashed_kernel_log("bug-on"))
    (crash / "kexec_cmd").write_text("kexec -p ...\n")  # kdump-tools' own files beside the crash dirs
    return tmp_path


def test_both_layouts_found_analyzed_and_handled_once(trees: Path) -> None:
    files = sorted(p for p in (trees / "crash").rglob("*") if p.is_file())
    before = snapshot(files)
    code, out, err = run(trees, "--crash-dir", str(trees / "crash"), "--pstore", str(trees / "none"))
    assert code == 0, err
    envs = {e["source"]: e for e in outbox(trees)}
    assert set(envs) == {"kdump-debian", "kdump-rhel"}
    deb = crash_of(envs["kdump-debian"])
    assert deb["kind"] == "null-deref" and deb["guilty_frame"] == "crashmod_read_rx_count"
    rh = crash_of(envs["kdump-rhel"])
    assert rh["kind"] == "bug" and rh["guilty_frame"] == "crashmod_check_state"
    assert envs["kdump-rhel"]["report"]["collected"]["source"] == "kdump-rhel"
    # a second run finds the same files already handled: nothing new queued
    code, out, _ = run(trees, "--crash-dir", str(trees / "crash"), "--pstore", str(trees / "none"))
    assert code == 0 and not said(out, "found") and len(outbox(trees)) == 2
    assert snapshot(files) == before


def test_a_dump_rewritten_in_place_is_a_new_dump(trees: Path) -> None:
    run(trees, "--crash-dir", str(trees / "crash"), "--pstore", str(trees / "none"))
    dmesg = trees / "crash" / "202612051432" / "dmesg.202612051432"
    os.utime(dmesg, ns=(time.time_ns(), time.time_ns() + 10**9))
    _, out, _ = run(trees, "--crash-dir", str(trees / "crash"), "--pstore", str(trees / "none"))
    assert len(said(out, "found")) == 1 and "202612051432" in out


def test_dry_run_writes_nothing(trees: Path) -> None:
    code, out, _ = run(trees, "--crash-dir", str(trees / "crash"), "--pstore", str(trees / "none"), "--dry-run")
    assert code == 0 and len(said(out, "found")) == 2
    assert not (trees / "spool").exists() and not (trees / "state.json").exists()


def test_dump_still_being_written_is_skipped_and_said(tmp_path: Path) -> None:
    d = debian_crash(tmp_path / "crash", "202612051500", crashed_kernel_log("warn"))
    (d / "dump-incomplete.gz").write_bytes(b"\x1f\x8b partial")
    code, out, _ = run(tmp_path, "--crash-dir", str(tmp_path / "crash"), "--pstore", str(tmp_path / "none"))
    assert code == 0 and said(out, "skipped") and "dump-incomplete.gz is still being written" in out
    assert outbox(tmp_path) == []
    # an incomplete dump left from an interrupted capture (old): its dmesg is analyzed
    old = time.time() - 3600
    os.utime(d / "dump-incomplete.gz", (old, old))
    code, out, _ = run(tmp_path, "--crash-dir", str(tmp_path / "crash"), "--pstore", str(tmp_path / "none"))
    assert code == 0 and said(out, "found")
    assert crash_of(outbox(tmp_path)[0])["guilty_frame"] == "crashmod_warn"


def test_corrupt_dump_one_line_and_its_dmesg_reported_instead(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    # a kdump-compressed header and nothing after it (a capture cut short), and a gzip'd dump that is garbage
    d1 = debian_crash(crash, "202612051600", crashed_kernel_log("null-member"), b"KDUMP   " + b"\0" * 4088)
    d2 = debian_crash(crash, "202612051700", crashed_kernel_log("bug-on"), gzip.compress(b"not a dump"), ".gz")
    rhel_crash(crash, "2026-12-05-18:00:00", crashed_kernel_log("warn"))
    files = sorted(p for p in crash.rglob("*") if p.is_file())
    before = snapshot(files)
    code, out, err = run(tmp_path, "--crash-dir", str(crash), "--pstore", str(tmp_path / "none"))
    assert code == 3
    lines = [x for x in err.splitlines() if x.startswith("ktriage collect:")]
    assert len(lines) == 2 and all("Traceback" not in x for x in err.splitlines())
    assert str(d1 / "dump.202612051600") in lines[0] and str(d2 / "dump.202612051700.gz") in lines[1]
    envs = outbox(tmp_path)
    assert [crash_of(e)["guilty_frame"] for e in envs] == [
        "crashmod_warn",
        "crashmod_read_rx_count",
        "crashmod_check_state",
    ]
    assert any("could not be analyzed" in n for n in envs[1]["report"]["notes"])
    assert snapshot(files) == before


def test_pstore_parts_reassembled_in_kernel_order(tmp_path: Path) -> None:
    log = crashed_kernel_log("null-member")
    parts = pstore_parts(log)
    assert len(parts) >= 3 and parts[0].startswith(b"Oops#1 Part1\n")
    paths = write_pstore(tmp_path / "pstore", parts)
    (dump,) = find_pstore_dumps([str(tmp_path / "pstore")])
    # the newest text is in Part1: read back highest part first, it is the log's tail, line for line
    tail = b"".join(p.split(b"\n", 1)[1] for p in reversed(parts))
    assert dump.text == tail and log.encode().endswith(tail.replace(b"<4>", b"").replace(b"<6>", b""))
    # the order matters: file-name order (Part1 first) puts the trace before the BUG line
    naive = b"".join(p.read_bytes() for p in paths)
    assert naive.index(b"crashmod_trigger") < naive.index(b"BUG: kernel NULL pointer")
    assert dump.text.index(b"BUG: kernel NULL pointer") < dump.text.index(b"crashmod_trigger")
    code, out, _ = run(tmp_path, "--crash-dir", str(tmp_path / "none"), "--pstore", str(tmp_path / "pstore"))
    assert code == 0
    (env,) = outbox(tmp_path)
    c = crash_of(env)
    assert env["source"] == "pstore" and c["guilty_frame"] == "crashmod_read_rx_count" and c["kind"] == "null-deref"
    assert [f["symbol"] for f in c["frames"][:2]] == ["crashmod_trigger", "crashmod_write"]


def test_pstore_archived_by_systemd_is_the_same_dump(tmp_path: Path) -> None:
    """systemd-pstore copies /sys/fs/pstore/dmesg-efi-<id> to /var/lib/systemd/pstore/<id minus 6 digits>/
    and writes dmesg.txt there; if the live copy is still there too (Unlink=no), it is one crash."""
    parts = pstore_parts(crashed_kernel_log("bug-on"))
    live = write_pstore(tmp_path / "sys", parts)
    archive = tmp_path / "lib" / live[0].name[len("dmesg-efi-") : -6]
    write_pstore(archive, parts)
    (archive / "dmesg.txt").write_bytes(b"".join(f"{p.name}:\n".encode() + p.read_bytes() for p in reversed(live)))
    dumps = find_pstore_dumps([str(tmp_path / "sys"), str(tmp_path / "lib")])
    assert len(dumps) == 2 and dumps[0].key == dumps[1].key
    code, out, _ = run(
        tmp_path,
        "--crash-dir",
        str(tmp_path / "none"),
        "--pstore",
        str(tmp_path / "sys"),
        "--pstore",
        str(tmp_path / "lib"),
    )
    assert code == 0 and len(said(out, "found")) == 1
    assert crash_of(outbox(tmp_path)[0])["guilty_frame"] == "crashmod_check_state"


def test_two_dumps_in_one_pstore_stay_apart(tmp_path: Path) -> None:
    write_pstore(tmp_path / "p", pstore_parts(crashed_kernel_log("warn"), why="Oops"), seconds=1796400000)
    write_pstore(tmp_path / "p", pstore_parts(crashed_kernel_log("bug-on"), why="Panic"), seconds=1796500000)
    dumps = find_pstore_dumps([str(tmp_path / "p")])
    assert sorted(d.reason for d in dumps) == ["Oops", "Panic"]
    code, out, _ = run(tmp_path, "--crash-dir", str(tmp_path / "none"), "--pstore", str(tmp_path / "p"))
    assert code == 0
    assert sorted(crash_of(e)["guilty_frame"] for e in outbox(tmp_path)) == ["crashmod_check_state", "crashmod_warn"]
