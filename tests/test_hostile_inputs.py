"""Inputs that once hung ktriage, exhausted its memory or lost other inputs' reports (issue 19), each
generated from a real console log (tests/hostile.py) and run through the command with a generous time
bound: a hang is what these catch, speed is bench/scale_bench.py's job. Each asserts the exit status and
that a report or a one-line error came out."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

import hostile
from realdata import REPO

LIMIT = 60  # seconds; each case takes ~1-2 s


def analyze(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", *args],
        input=stdin,
        capture_output=True,
        timeout=LIMIT,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})},
        cwd=REPO,
    )


def report(p: subprocess.CompletedProcess[bytes]) -> dict:
    return json.loads(p.stdout)


@pytest.mark.parametrize("name", sorted(hostile.CASES))
def test_pathological_line_is_read_in_time(tmp_path: Path, name: str) -> None:
    path = hostile.write(tmp_path, f"{name}.log", hostile.CASES[name])
    p = analyze("--format", "json", str(path))
    assert p.returncode == 0, p.stderr
    kinds = [c["kind"] for c in report(p)["crashes"]]
    # the base log's oops is still found (the forged WARNING just before it opens the report)
    assert kinds == (["warning"] if name == "warning-symbol" else ["null-deref"])


def test_long_line_cut_with_a_note(tmp_path: Path) -> None:
    path = hostile.write(tmp_path, "rip.log", hostile.CASES["rip-symbol-offset"])
    doc = report(analyze("--format", "json", str(path)))
    (inp,) = doc["inputs"]
    assert any("longer than 64 KiB cut" in n and "100045 bytes" in n for n in inp["notes"]), inp["notes"]


def test_code_line_beyond_window_refused_with_note(tmp_path: Path) -> None:
    path = hostile.write(tmp_path, "code.log", hostile.CASES["code-10000"])
    doc = report(analyze("--format", "json", str(path)))
    (c,) = doc["crashes"]
    assert "Code: line of 10000 tokens" in c["code"]["note"]
    assert len(bytes.fromhex(c["code"]["bytes"])) <= 256
    # the kept window still decodes the real faulting instruction of the base log
    trap = next(f for f in c["findings"] if f["code"] == "insn.trap")
    assert "mov 0xa30(%rax),%rax" in trap["summary"]


def test_file_without_newline_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "blob.log"
    with open(path, "wb") as f:
        f.write(b"[    1.000000] ")
        for _ in range(64):
            f.write(b"x" * (1 << 20))  # 64 MiB, no newline
    p = analyze("--format", "json", str(path))
    assert p.returncode == 0, p.stderr
    (inp,) = report(p)["inputs"]
    assert any("cut" in n for n in inp["notes"])


def test_cr_only_line_endings_are_lines(tmp_path: Path) -> None:
    text = hostile.BASE.read_bytes().replace(b"\n", b"\r")
    path = hostile.write(tmp_path, "serial.log", text)
    doc = report(analyze("--format", "json", str(path)))
    (c,) = doc["crashes"]
    assert c["guilty_frame"] == "crashmod_read_rx_count"


def test_crash_cap_summarises_the_rest_by_title(tmp_path: Path) -> None:
    lines = hostile.BASE.read_text().splitlines()
    oops = "\n".join(lines[lines.index(next(x for x in lines if "BUG: kernel NULL" in x)) :][:40]) + "\n"
    path = hostile.write(tmp_path, "many.log", oops * 30)
    doc = report(analyze("--format", "json", "--no-analysis", "--max-crashes", "5", str(path)))
    assert len(doc["crashes"]) == 5
    (inp,) = doc["inputs"]
    assert inp["crashes"] == 30
    assert any(
        "the other 25 by title: 25 x BUG: unable to handle kernel NULL pointer dereference in crashmod_read_rx_count"
        in n
        for n in inp["notes"]
    ), inp["notes"]


def _compressed(kind: str, data: bytes) -> bytes:
    if kind == "gz":
        return gzip.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    return zstandard.ZstdCompressor().compress(data)


def _filler(n: int, seed: int = 0) -> bytes:
    """n ordinary log lines that compress like a real log (numbers that vary)."""
    return b"".join(
        b"[%5d.%06d] usb 1-%d: new high-speed USB device number %d using ehci-pci, cookie %08x\n"
        % (i // 1000, (i * 7919) % 1000000, i % 7, i, (i * 2654435761 + seed) & 0xFFFFFFFF)
        for i in range(n)
    )


def _big_log() -> bytes:
    """The base log behind ~2.4 MB of ordinary lines: the crash sits past the first MiB of output."""
    return _filler(30000) + hostile.BASE.read_bytes()


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2", "zst"])
def test_truncated_compressed_log_reports_what_decodes(tmp_path: Path, kind: str) -> None:
    """A compressed log cut short (a copy interrupted): the crash before the cut is reported, and the input is
    partial with the point where it broke."""
    data = hostile.BASE.read_bytes() + _filler(60000)  # ~5 MB: bzip2's 900 kB blocks, zstd's 128 KiB
    comp = _compressed(kind, data)
    path = hostile.write(tmp_path, f"cut.log.{kind}", comp[: len(comp) * 3 // 4])
    p = analyze("--format", "json", str(path))
    assert p.returncode == 3, p.stderr
    doc = report(p)
    assert [c["kind"] for c in doc["crashes"]] == ["null-deref"]
    (inp,) = doc["inputs"]
    assert inp["status"] == "partial"
    assert "truncated" in inp["error"] and "bytes decoded" in inp["error"]
    assert p.stderr.decode().count("\n") == 1


@pytest.mark.parametrize("kind", ["gz", "xz", "zst"])
def test_corrupt_middle_of_compressed_log_keeps_other_inputs(tmp_path: Path, kind: str) -> None:
    data = hostile.BASE.read_bytes() + _filler(60000)
    comp = bytearray(_compressed(kind, data))
    mid = len(comp) * 3 // 4
    comp[mid : mid + 64] = bytes(64)  # zeroed block, well past the crash
    bad = hostile.write(tmp_path, f"bad.log.{kind}", bytes(comp))
    good = hostile.write(tmp_path, "good.log", hostile.BASE.read_bytes())
    p = analyze("--format", "json", str(bad), str(good))
    assert p.returncode == 3, p.stderr
    doc = report(p)
    st = {Path(i["path"]).name: i for i in doc["inputs"]}
    assert st["good.log"]["status"] == "ok"
    assert st[bad.name]["status"] == "partial"
    assert "corrupt" in st[bad.name]["error"] or "truncated" in st[bad.name]["error"]
    assert len(doc["crashes"]) >= 2  # the good input's crash and the one before the damage


def test_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    good = hostile.write(tmp_path, "good.log", hostile.BASE.read_bytes())
    p = analyze("--format", "json", str(fifo), str(good))
    assert p.returncode == 3
    assert b"FIFO" in p.stderr and len(report(p)["crashes"]) == 1


def test_control_characters_in_names_are_escaped(tmp_path: Path) -> None:
    p = analyze(str(tmp_path / "evil\x1b[2Jname"))
    assert p.returncode == 3
    assert b"\x1b" not in p.stderr and b"\\x1b[2Jname" in p.stderr


def test_non_utf8_name_with_output_and_strict_stdout(tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/log-\xff.txt"
    with open(name, "wb") as f:
        f.write(hostile.BASE.read_bytes())
    out = os.fsencode(tmp_path) + b"/out-\xfe.txt"
    p = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", name, "-o", out],
        capture_output=True,
        timeout=LIMIT,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert p.returncode == 0, p.stderr
    assert b"crashmod_read_rx_count" in open(out, "rb").read()
    p = analyze(os.fsdecode(name), env={"PYTHONIOENCODING": "utf-8:strict"})
    assert p.returncode == 0, p.stderr
    assert b"Traceback" not in p.stderr


def test_journal_json_nesting_and_bad_message_lists(tmp_path: Path) -> None:
    """journalctl -o json lines that no journal writes (nested thousands deep, MESSAGE as a list of
    strings or out-of-range numbers) are bad lines: the kernel lines around them are still read."""
    good = [json.dumps({"_TRANSPORT": "kernel", "MESSAGE": line[len(hostile.TS) :]}) for line in hostile.base_lines()]
    i = next(n for n, line in enumerate(good) if "crashmod: trigger" in line)
    bad = ["[" * 100000 + "]" * 100000, '{"MESSAGE": ["a", "b"], "_TRANSPORT": "kernel"}', '{"MESSAGE": [300, -1]}']
    path = hostile.write(tmp_path, "j.json", "\n".join(good[:i] + bad + good[i:]) + "\n")
    p = analyze("--format", "json", str(path))
    assert p.returncode == 0, p.stderr
    (c,) = report(p)["crashes"]
    assert c["guilty_frame"] == "crashmod_read_rx_count"
