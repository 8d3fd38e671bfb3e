"""vmcore inputs that cannot be read: one line, exit status 3, never a traceback.

Made-up headers only; tests that need a real dump (truncated, zeroed pages) live in tests/lab/.
"""

from __future__ import annotations

import struct

import pytest

pytest.importorskip("drgn")

from ktriage.pipeline import Options, analyze_paths  # noqa: E402


def _one(path) -> object:
    r = analyze_paths([str(path)], Options())
    assert len(r.inputs) == 1
    return r.inputs[0]


def test_kdump_header_then_garbage(tmp_path):
    p = tmp_path / "vmcore"
    p.write_bytes(b"KDUMP   " + b"\0" * 8192)
    rec = _one(p)
    assert rec.status == "error"
    assert "\n" not in rec.error and "not readable as a kernel dump" in rec.error


def test_flattened_garbage(tmp_path):
    p = tmp_path / "vmcore.flat"
    p.write_bytes(b"makedumpfile" + b"\0" * 8192)
    rec = _one(p)
    assert rec.status == "error" and "\n" not in rec.error
    assert "flattened" in rec.error


def test_elf_core_without_notes(tmp_path):
    p = tmp_path / "core"
    hdr = (
        b"\x7fELF"
        + bytes([2, 1, 1, 0])
        + b"\0" * 8
        + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0)
    )
    p.write_bytes(hdr)
    rec = _one(p)
    assert rec.status == "error" and "\n" not in rec.error


def test_cli_exit_status(tmp_path):
    from click.testing import CliRunner

    from ktriage.cli import main

    p = tmp_path / "vmcore"
    p.write_bytes(b"KDUMP   " + b"\1" * 4096)
    res = CliRunner().invoke(main, ["analyze", str(p)])
    assert res.exit_code == 3
    assert "Traceback" not in res.output
