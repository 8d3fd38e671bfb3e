"""The `ktriage analyze` command end to end, on real crash text: formats, compression,
stdin, directories, bad input, exit codes and the JSON contract."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import zstandard

from realdata import FIXTURES, REPO

SCHEMA = json.loads((REPO / "src/ktriage/schema/report-1.json").read_text())
EXAMPLE = REPO / "examples" / "centos7-nf_conntrack-dmesg.txt"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ktriage.cli", *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=300,
    )


def analyze_json(*paths: str, stdin: bytes | None = None) -> dict:
    p = run("analyze", "--format", "json", *paths, stdin=stdin)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


def test_example_seed000_json_contract() -> None:
    doc = analyze_json(str(EXAMPLE))
    assert doc["schema"] == "ktriage.report/1"
    (c,) = doc["crashes"]
    # values checked by hand against the example's text (seed 000)
    assert c["kind"] == "null-deref"
    assert c["title"] == "BUG: unable to handle kernel NULL pointer dereference in nf_ct_deliver_cached_events"
    assert c["guilty_frame"] == "nf_ct_deliver_cached_events"
    assert c["fault_address"] == 0xA30  # "NULL pointer dereference at 0000000000000a30"
    assert c["ip"] == {
        "symbol": "nf_ct_deliver_cached_events",
        "offset": 0x2D,
        "size": 0x110,
        "module": "nf_conntrack",
        "address": 0xFFFFFFFFC086077D,
    }
    assert c["kernel"]["release"] == "3.10.0-1160.el7.x86_64"
    assert c["kernel"]["distro"] == "el7"
    assert c["arch"] == "x86_64"
    assert c["task"] == {"comm": "Verdict3", "pid": 5027, "cpu": 1}
    assert c["context"] == "process"
    assert c["taint"]["flags"] == "G OE"
    assert c["registers"]["RAX"] == 0 and c["registers"]["RDI"] == 0xFFFF893CA41E5140
    assert c["registers"]["CR2"] == 0xA30
    names = [f["symbol"] for f in c["frames"]]
    assert names[:4] == ["ipv4_confirm", "nf_iterate", "nf_reinject", "nfqnl_recv_verdict"]
    assert c["frames"][4] == {
        "symbol": "nla_parse",
        "offset": 0xB6,
        "size": 0x120,
        "module": None,
        "address": 0xFFFFFFFF9F9B4716,
        "reliable": False,
        "section": "task",
        "inline": False,
    }
    assert names[-1] == "system_call_fastpath"
    assert c["corrupted"] is False
    assert c["source"]["path"] == str(EXAMPLE) and c["source"]["first_line"] == 1


def test_text_and_markdown_reports() -> None:
    p = run("analyze", str(EXAMPLE))
    assert p.returncode == 0
    assert "nf_ct_deliver_cached_events+0x2d/0x110 [nf_conntrack]" in p.stdout
    assert "\x1b[" not in p.stdout  # no colour when not a terminal
    md = run("analyze", "--format", "markdown", str(EXAMPLE))
    assert md.returncode == 0 and md.stdout.startswith("# ktriage report")
    assert "## 1. BUG: unable to handle kernel NULL pointer dereference in nf_ct_deliver_cached_events" in md.stdout


@pytest.mark.parametrize("comp", ["gzip", "xz", "bz2", "zstd"])
def test_compressed_inputs(tmp_path: Path, comp: str) -> None:
    raw = EXAMPLE.read_bytes()
    data = {
        "gzip": gzip.compress,
        "xz": lzma.compress,
        "bz2": bz2.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }[comp](raw)
    f = tmp_path / "messages.1"
    f.write_bytes(data)
    doc = analyze_json(str(f))
    assert doc["inputs"][0]["format"] == f"log+{comp}"
    assert doc["crashes"][0]["guilty_frame"] == "nf_ct_deliver_cached_events"


def test_stdin_and_directory_walk(tmp_path: Path) -> None:
    doc = analyze_json("-", stdin=EXAMPLE.read_bytes())
    assert doc["crashes"][0]["task"]["comm"] == "Verdict3"
    # /var/crash layout: one folder per crash
    for i, name in enumerate(["127.0.0.1-2022-06-25-10:05:32", "127.0.0.1-2022-07-01-08:00:00"]):
        d = tmp_path / name
        d.mkdir()
        # the second: a 6.1 lab kernel's console log (NULL member read in a test module, x86_64)
        other = FIXTURES / "lab" / "null-member.console.log"
        (d / "vmcore-dmesg.txt").write_bytes((EXAMPLE if i == 0 else other).read_bytes())
    doc = analyze_json(str(tmp_path))
    assert len(doc["inputs"]) == 2 and all(i["status"] == "ok" for i in doc["inputs"])
    assert [c["kind"] for c in doc["crashes"]] == ["null-deref", "null-deref"]


def test_bad_inputs_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(bytes(range(256)) * 64)
    bad_gz = tmp_path / "cut.gz"
    bad_gz.write_bytes(gzip.compress(EXAMPLE.read_bytes() * 50)[:200])
    emptydir = tmp_path / "nothing"
    emptydir.mkdir()
    cases = {
        str(tmp_path / "missing"): "no such file",
        str(garbage): "binary data",
        str(emptydir): "directory holds no files",
        str(bad_gz): "gzip data",
    }
    for path, msg in cases.items():
        p = run("analyze", path)
        assert p.returncode == 3, (path, p.stdout, p.stderr)
        assert msg in p.stderr and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    p = run("analyze", str(empty))
    assert p.returncode == 0 and "no kernel crash found" in p.stdout
    assert run("analyze").returncode == 2  # usage
    assert run("analyze", "--format", "xml", str(EXAMPLE)).returncode == 2


def test_invalid_utf8_is_read(tmp_path: Path) -> None:
    f = tmp_path / "latin1.log"
    f.write_bytes(b"\xff\xfe caf\xe9 \x80\x81\n" + EXAMPLE.read_bytes())
    doc = analyze_json(str(f))
    assert doc["crashes"][0]["fault_address"] == 0xA30


def test_inputs_are_not_modified(tmp_path: Path) -> None:
    f = tmp_path / "dmesg"
    f.write_bytes(EXAMPLE.read_bytes())
    before = (f.stat().st_mtime_ns, f.read_bytes())
    os.chmod(f, 0o444)
    analyze_json(str(f))
    assert (f.stat().st_mtime_ns, f.read_bytes()) == before


def test_large_log_bounded_memory(tmp_path: Path) -> None:
    """A 256 MB syslog with real crashes inside is streamed: peak RSS stays far below the file size."""
    sys.path.insert(0, str(REPO / "bench"))
    import scan_speed  # the benchmark's generator: routine syslog lines + real corpus crashes

    f = tmp_path / "messages"
    planted = scan_speed.generate(f, 256 << 20)
    # VmHWM, not ru_maxrss: the latter keeps the forking pytest process's high-water mark across exec
    script = (
        "import re;"
        "from ktriage.pipeline import analyze_paths, Options;"
        f"r=analyze_paths([{str(f)!r}], Options(analyze=False));"
        "hwm=re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1);"
        "print(len(r.crashes), hwm)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    n, rss_kb = map(int, out.stdout.split())
    assert n >= planted >= 3
    assert rss_kb < 200 * 1024, f"peak RSS {rss_kb} kB for a 256 MB log"
