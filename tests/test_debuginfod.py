"""The debuginfod client against a real HTTP server (http.server on 127.0.0.1, in a thread) serving a
real ELF file with a GNU build ID (/bin/true, or the first of a few system binaries that has one).

The build ID expected for the served file is read with binutils `readelf -n` when available (the
reference), else by ktriage's own ELF reader. Crashes come from real corpus logs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ktriage.debuginfo import debuginfod
from ktriage.debuginfo.elf import ElfFile
from ktriage.debuginfo.find import search
from ktriage.logs import parse_log_text
from realdata import corpus_log

CANDIDATES = ("/bin/true", "/usr/bin/true", "/bin/ls", "/usr/bin/env", "/bin/sh")


def _build_id(path: str) -> str | None:
    if shutil.which("readelf"):
        out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
        m = re.search(r"Build ID: ([0-9a-f]+)", out)
        return m.group(1) if m else None
    elf = ElfFile.open(path)
    try:
        return elf.build_id
    finally:
        elf.close()


@pytest.fixture(scope="module")
def elf() -> tuple[str, str, bytes]:
    """(path, build id, bytes) of a real system ELF file with a build ID."""
    for p in CANDIDATES:
        if os.path.isfile(p) and os.access(p, os.R_OK):
            bid = _build_id(os.path.realpath(p))
            if bid:
                assert ElfFile.open(p).build_id == bid  # ktriage's reader agrees with readelf
                return p, bid, Path(p).read_bytes()
    pytest.skip("no system ELF file with a GNU build ID")


class Server:
    """Serves `files` (URL path -> bytes); counts requests; `delay` seconds before answering;
    `short` URL paths announce more bytes than they send, then close (a cut download)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.delay = 0.0
        self.short: set[str] = set()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                if outer.delay:
                    time.sleep(outer.delay)
                body = outer.files.get(self.path)
                try:
                    if body is None:
                        self.send_error(404, "Not Found")
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body) + (4096 if self.path in outer.short else 0)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if self.path in outer.short:
                    self.close_connection = True

            def log_message(self, *a) -> None:  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A private cache; no debuginfod settings from the machine running the tests."""
    for k in ("DEBUGINFOD_URLS", "DEBUGINFOD_TIMEOUT", "DEBUGINFOD_MAXTIME", "DEBUGINFOD_MAXSIZE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEBUGINFOD_CACHE_PATH", str(cache))
    return monkeypatch, cache


def _leftovers(cache: Path) -> list[str]:
    return [str(p) for p in cache.rglob("*") if p.is_file() and p.name != "debuginfo"]


def test_hit_then_cache_reuse(elf, server, env) -> None:
    path, bid, data = elf
    mp, cache = env
    server.files[f"/buildid/{bid}/debuginfo"] = data
    mp.setenv("DEBUGINFOD_URLS", server.url + "/")  # a trailing slash, as users write it
    f = debuginfod.fetch(bid)
    assert f.path == str(cache / bid / "debuginfo")  # elfutils' layout
    assert Path(f.path).read_bytes() == data and f.source == server.url
    assert server.requests == [f"/buildid/{bid}/debuginfo"]
    assert "fetched" in f.steps[-1] and f.refused == []
    assert _leftovers(cache) == []
    again = debuginfod.fetch(bid)  # second call: from the cache, no request
    assert (again.path, again.source) == (f.path, "cache")
    assert len(server.requests) == 1
    assert "no request" in again.steps[0]


def test_elfutils_cache_used_without_urls(elf, env) -> None:
    """A file gdb/drgn/elfutils already fetched (`<cache>/<build id>/debuginfo`) is used with
    DEBUGINFOD_URLS unset; a default cache is $XDG_CACHE_HOME/debuginfod_client like elfutils'."""
    path, bid, data = elf
    mp, cache = env
    (cache / bid).mkdir(parents=True)
    shutil.copyfile(path, cache / bid / "debuginfo")
    f = debuginfod.fetch(bid)
    assert (f.path, f.source) == (str(cache / bid / "debuginfo"), "cache")
    mp.delenv("DEBUGINFOD_CACHE_PATH")
    mp.setenv("XDG_CACHE_HOME", str(cache.parent / "xdg"))
    assert debuginfod.cache_path(bid) == cache.parent / "xdg" / "debuginfod_client" / bid / "debuginfo"


def test_404_then_next_server(elf, server, env) -> None:
    path, bid, data = elf
    mp, cache = env
    other = Server()
    try:
        other.files[f"/buildid/{bid}/debuginfo"] = data
        mp.setenv("DEBUGINFOD_URLS", f"{server.url} {other.url}")
        f = debuginfod.fetch(bid)
        assert server.requests == [f"/buildid/{bid}/debuginfo"] and len(other.requests) == 1
        assert "404" in f.steps[0] and f.steps[0].startswith(server.url)
        assert f.source == other.url and Path(f.path).read_bytes() == data
    finally:
        other.close()
    missing = "0" * 40
    g = debuginfod.fetch(missing)
    assert g.path is None and "404" in g.steps[0]
    assert "unreachable" in g.steps[1]  # the second server is gone by now: said, not fatal
    assert not (cache / missing / "debuginfo").exists() and _leftovers(cache) == []


def test_timeout(elf, server, env) -> None:
    path, bid, data = elf
    mp, cache = env
    server.files[f"/buildid/{bid}/debuginfo"] = data
    server.delay = 3.0
    mp.setenv("DEBUGINFOD_URLS", server.url)
    mp.setenv("DEBUGINFOD_TIMEOUT", "1")
    t0 = time.monotonic()
    f = debuginfod.fetch(bid)
    assert time.monotonic() - t0 < 2.5
    assert f.path is None and "timed out" in f.steps[-1] and "DEBUGINFOD_TIMEOUT 1" in f.steps[-1]
    assert not (cache / bid / "debuginfo").exists() and _leftovers(cache) == []


def test_connect_timeout_is_short(env) -> None:
    """A server that never answers the TCP handshake: the connect timeout (min(10 s, DEBUGINFOD_TIMEOUT))
    bounds the wait, not the 90 s read timeout. A listening socket with a full backlog is used."""
    import socket

    mp, cache = env
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue so later connects hang (Linux drops the SYN)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(lst.getsockname())
            fillers.append(s)
        time.sleep(0.2)
        mp.setenv("DEBUGINFOD_URLS", "http://%s:%d" % lst.getsockname())
        mp.setenv("DEBUGINFOD_TIMEOUT", "4")  # the read timeout: not what bounds a connect
        mp.setattr(debuginfod, "CONNECT_TIMEOUT", 1.0)  # 10 s in production; 1 s keeps the test short
        t0 = time.monotonic()
        f = debuginfod.fetch("1" * 40)
        took = time.monotonic() - t0
        if "DEBUGINFOD_TIMEOUT" in f.steps[-1]:
            pytest.skip("this kernel completed the TCP handshake despite the full accept queue")
        assert f.path is None and took < 3, (took, f.steps)
        assert "timed out connecting" in f.steps[-1], f.steps
    finally:
        for s in fillers:
            s.close()
        lst.close()


def test_wrong_build_id_refused(elf, server, env) -> None:
    path, bid, data = elf
    mp, cache = env
    wrong = "ab" * 20
    server.files[f"/buildid/{wrong}/debuginfo"] = data  # a real ELF, but not the one asked for
    server.files[f"/buildid/{'cd' * 20}/debuginfo"] = b"<html>not an ELF file</html>" * 10
    mp.setenv("DEBUGINFOD_URLS", server.url)
    f = debuginfod.fetch(wrong)
    assert f.path is None
    assert f.refused == [
        f"{server.url}/buildid/{wrong}/debuginfo: refused: the file sent has build ID {bid}, not {wrong}"
    ]
    g = debuginfod.fetch("cd" * 20)
    assert g.path is None and "not an ELF file with a build ID" in g.refused[0]
    assert not (cache / wrong / "debuginfo").exists() and _leftovers(cache) == []


def test_cut_download_never_cached(elf, server, env) -> None:
    path, bid, data = elf
    mp, cache = env
    server.files[f"/buildid/{bid}/debuginfo"] = data
    server.short.add(f"/buildid/{bid}/debuginfo")
    mp.setenv("DEBUGINFOD_URLS", server.url)
    f = debuginfod.fetch(bid)
    assert f.path is None and ("IncompleteRead" in f.steps[-1] or "incomplete" in f.steps[-1])
    assert not (cache / bid / "debuginfo").exists() and _leftovers(cache) == []


# --- through find.search: the notes and the crash verification -------------------------------


def _crash_679():
    """corpus 679 (5.10 syzkaller, CONFIG_STACKTRACE_BUILD_ID): its task line ends with vmlinux's build ID:
    `CPU: 0 PID: 3879 Comm: syz-executor.4 Not tainted 5.10.136-syzkaller-19376-g6f46a5fe0124 #0
    8f0771607702f5ef7184d2ee33bd0acd70219fc4`."""
    return parse_log_text(corpus_log("679"))[0]


def _dbg(s) -> list[str]:
    return [x for x in s.looked if x.startswith("debuginfod")]


def test_build_id_sources(env) -> None:
    c = _crash_679()
    assert debuginfod.vmlinux_build_id(c, {}) == (
        "8f0771607702f5ef7184d2ee33bd0acd70219fc4",
        "the CPU: line (CONFIG_STACKTRACE_BUILD_ID)",
    )
    v = c.replace(system={"BUILD-ID": "2EBF0E501C8F07473AA8CEE1D60518BF89F5A603"})  # as a vmcore's VMCOREINFO gives it
    assert debuginfod.vmlinux_build_id(v, {})[0] == "2ebf0e501c8f07473aa8cee1d60518bf89f5a603"
    plain = parse_log_text(corpus_log("263"))[0]  # 4.18: no build ID printed
    assert debuginfod.vmlinux_build_id(plain, {}) == (None, "")


def test_search_notes_off_and_no_build_id(env, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))
    s = search(_crash_679())
    assert s.vmlinux is None
    (line,) = _dbg(s)
    assert line.startswith(
        "debuginfod: off (DEBUGINFOD_URLS is not set); vmlinux build ID "
        "8f0771607702f5ef7184d2ee33bd0acd70219fc4 from the CPU: line"
    )
    assert line in s.looked_summary(3)  # always shown, however long the list
    s = search(parse_log_text(corpus_log("263"))[0])
    assert any("vmlinux not asked: no vmlinux build ID" in x for x in _dbg(s))


def test_search_404_noted(server, env, monkeypatch, tmp_path) -> None:
    mp, cache = env
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))
    mp.setenv("DEBUGINFOD_URLS", server.url)
    s = search(_crash_679())
    assert server.requests == ["/buildid/8f0771607702f5ef7184d2ee33bd0acd70219fc4/debuginfo"]
    (line,) = _dbg(s)
    assert f"{server.url}/buildid/8f0771607702f5ef7184d2ee33bd0acd70219fc4/debuginfo: 404" in line
    assert s.vmlinux is None
    again = search(_crash_679())  # another crash of the same kernel in the same run: not asked again
    assert len(server.requests) == 1 and "(asked once in this run)" in _dbg(again)[0]


def test_search_verifies_the_fetched_file(elf, server, env, monkeypatch, tmp_path) -> None:
    """A file with the right build ID is still checked as a vmlinux of the crash's kernel:
    /bin/true is refused (no linux_banner), never used to symbolize."""
    path, bid, data = elf
    mp, cache = env
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))
    server.files[f"/buildid/{bid}/debuginfo"] = data
    mp.setenv("DEBUGINFOD_URLS", server.url)
    c = _crash_679().replace(system={"BUILD-ID": bid})
    s = search(c)
    assert s.vmlinux is None
    assert any(r.startswith(str(cache / bid / "debuginfo")) and "no linux_banner" in r for r in s.refused)
    assert "; refused (see refusals)" in _dbg(s)[0]


def test_modules_need_debuginfo(env, monkeypatch, tmp_path) -> None:
    """Lab null-member log: crashmod's frames carry no build ID: the note says to give --debuginfo."""
    from realdata import REPO

    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))
    log = REPO / "tests" / "fixtures" / "lab" / "null-member.console.log"
    c = parse_log_text(log.read_text(errors="replace"), str(log))[0]
    s = search(c)
    assert (
        "debuginfod: crashmod.ko not asked: the log prints no build ID for modules "
        "(CONFIG_STACKTRACE_BUILD_ID): give --debuginfo" in _dbg(s)
    )


# --- the lab: a real vmcore, whose VMCOREINFO names the build ID, and the lab's vmlinux served ---------


@pytest.mark.skipif(os.environ.get("KTRIAGE_LAB") != "run", reason="crash lab tests run with KTRIAGE_LAB=run")
def test_lab_vmcore_vmlinux_from_debuginfod(env) -> None:
    """The null-member vmcore analyzed with no --vmlinux: VMCOREINFO's BUILD-ID is asked of a local
    debuginfod that serves the lab's vmlinux; the file is verified against the crash and used (source
    lines for the vmlinux frames); crashmod.ko, whose build ID no one printed, is named as missing."""
    import json

    from ktriage.pipeline import Options, analyze_paths

    manifest = Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab") / "lab.json"
    if not manifest.is_file():
        pytest.skip(f"{manifest} missing (the lab is not built)")
    lab = json.loads(manifest.read_text())
    sc = lab["scenarios"].get("null-member") or {}
    vmlinux, vmcore = lab.get("vmlinux", ""), sc.get("vmcore", "")
    if not (os.path.isfile(vmlinux) and os.path.isfile(vmcore) and sc.get("ok")):
        pytest.skip("lab vmlinux / null-member vmcore missing (the lab is being rebuilt?)")
    bid = _build_id(vmlinux)
    mp, cache = env
    srv = Server()
    try:
        srv.files[f"/buildid/{bid}/debuginfo"] = Path(vmlinux).read_bytes()
        mp.setenv("DEBUGINFOD_URLS", srv.url)
        rep = analyze_paths([vmcore], Options())
        cr = rep.crashes[0]
        if cr.crash.system.get("BUILD-ID") != bid:
            pytest.skip("the vmcore does not belong to the lab's current vmlinux (lab mid-rebuild)")
        assert srv.requests == [f"/buildid/{bid}/debuginfo"]
        # the vmcore reader asked first (one request), and its analysis runs on the DWARF tier with it
        assert cr.crash.system["DEBUGINFO"] == "dwarf"
        assert any(
            n.startswith(f"debuginfod, vmlinux (build id {bid}): {srv.url}/buildid/{bid}/debuginfo")
            for n in rep.inputs[0].notes
        ), rep.inputs[0].notes
        files = next(f for f in cr.findings if f.code == "debuginfo.files")
        assert files.data["vmlinux"] == str(cache / bid / "debuginfo")
        # the log-level lookup found the file the vmcore reader had just saved: elfutils' cache, no request
        assert f"vmlinux: {cache / bid / 'debuginfo'} (debuginfod cache)" in files.evidence, files.evidence
        assert "crashmod.ko" in files.data["missing"]
        assert any("debuginfod: crashmod.ko not asked" in x for x in files.data["looked"])
        frames = next(f for f in cr.findings if f.code == "src.frames")
        assert any(fr["locations"] for fr in frames.data["frames"] if fr["module"] is None)
        analyze_paths([vmcore], Options())  # again: from the cache, no second request
        assert len(srv.requests) == 1
    finally:
        srv.close()
