"""A debuginfod client: fetch the crashed kernel's debug file by build ID (elfutils' protocol and cache).

Used by `find.search` when nothing local matched. The environment is elfutils', so gdb, drgn, perf and
ktriage share one configuration and one cache:

  DEBUGINFOD_URLS        space-separated server URLs, asked in order (unset: debuginfod is off)
  DEBUGINFOD_CACHE_PATH  the cache directory (default $XDG_CACHE_HOME/debuginfod_client, else
                         ~/.cache/debuginfod_client); a file is `<cache>/<build id>/debuginfo`, so one
                         already fetched by gdb/drgn/elfutils is used without a request
  DEBUGINFOD_TIMEOUT     seconds a server may take to start sending / stay silent (default 90, as elfutils);
                         connecting is bounded separately by min(10 s, DEBUGINFOD_TIMEOUT)
  DEBUGINFOD_MAXTIME     total seconds for one download (default: no limit)
  DEBUGINFOD_MAXSIZE     largest file accepted, in bytes (default: no limit)

A download goes to a temporary file in the cache directory and is renamed into place only once it is
complete and its ELF build ID is the one asked for: the cache never holds a partial or foreign file.
The caller still verifies the file against the crash (release, build, function sizes, Code: bytes).

Build IDs: a vmcore's VMCOREINFO gives vmlinux's (`BUILD-ID`); a log gives it only when the kernel
has CONFIG_STACKTRACE_BUILD_ID (5.14+: at the end of the `CPU: ... Comm: ...` line), and then also
each module's (`func+0x1/0x2 [mod <build id>]`). Without a build ID there is nothing to ask for: a
module then needs --debuginfo.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIMEOUT = 90.0  # elfutils' DEBUGINFOD_TIMEOUT default
CONNECT_TIMEOUT = 10.0
CHUNK = 1 << 20
USER_AGENT = "ktriage (debuginfod client)"

_BUILD_ID = re.compile(r"^[0-9a-f]{8,128}$")
# CONFIG_STACKTRACE_BUILD_ID: dump_stack prints vmlinux's build ID at the end of the task line
_CPU_LINE_ID = re.compile(r"\bCPU: \d+ .*\bComm: .* #\S+.*?\s([0-9a-f]{40})\s*$")


def urls() -> list[str]:
    return [u.rstrip("/") for u in (os.environ.get("DEBUGINFOD_URLS") or "").split() if u.strip("/")]


def cache_dir() -> Path:
    p = os.environ.get("DEBUGINFOD_CACHE_PATH")
    if p:
        return Path(p)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "debuginfod_client"


def cache_path(build_id: str) -> Path:
    return cache_dir() / build_id / "debuginfo"


def _seconds(name: str, default: float | None) -> float | None:
    v = os.environ.get(name)
    try:
        return float(v) if v not in (None, "") and float(v) > 0 else default
    except ValueError:
        return default


def vmlinux_build_id(crash, log_ids: dict[str, str]) -> tuple[str | None, str]:
    """(vmlinux build ID, where it was read) from the crash: a build ID the trace printed, a vmcore's
    VMCOREINFO (`system["BUILD-ID"]`), or the end of the `CPU: ... Comm: ...` line."""
    if log_ids.get("vmlinux"):
        return log_ids["vmlinux"], "the call trace"
    bid = (getattr(crash, "system", None) or {}).get("BUILD-ID")
    if bid and _BUILD_ID.match(bid.lower()):
        return bid.lower(), "the vmcore's VMCOREINFO"
    for line in getattr(crash, "lines", ()):
        m = _CPU_LINE_ID.search(line)
        if m:
            return m.group(1), "the CPU: line (CONFIG_STACKTRACE_BUILD_ID)"
    return None, ""


# --- fetching ------------------------------------------------------------------------------------


@dataclass
class Fetch:
    """One build ID asked of the cache and the servers: the file (or None) and one line per step."""

    build_id: str
    path: str | None = None
    source: str = ""  # "cache" or the server URL that sent it
    steps: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _elf_build_id(path: str) -> str | None:
    from ktriage.debuginfo.elf import ElfError, ElfFile

    try:
        elf = ElfFile.open(path)
    except (ElfError, OSError):
        return None
    try:
        return elf.build_id
    finally:
        elf.close()


def fetch(build_id: str, kind: str = "debuginfo") -> Fetch:
    """The cached `<cache>/<build id>/debuginfo`, else the first server's answer (cached on success)."""
    bid = build_id.lower()
    out = Fetch(bid)
    target = cache_path(bid)
    if target.is_file() and target.stat().st_size > 0 and os.access(target, os.R_OK):
        got = _elf_build_id(str(target))
        if got == bid:
            out.path, out.source = str(target), "cache"
            out.steps.append(f"in the cache {target} (no request)")
            return out
        out.steps.append(f"cache file {target} ignored: build ID {got or 'unreadable'}")
    servers = urls()
    if not servers:
        out.steps.append("DEBUGINFOD_URLS is not set")
        return out
    key = (bid, kind, tuple(servers), str(target))
    if key in _MISSES:  # a log of many crashes of one kernel asks once per run, not once per crash
        old = _MISSES[key]
        return Fetch(bid, steps=old.steps + ["(asked once in this run)"], refused=list(old.refused))
    timeout = _seconds("DEBUGINFOD_TIMEOUT", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT
    maxtime = _seconds("DEBUGINFOD_MAXTIME", None)
    maxsize = _seconds("DEBUGINFOD_MAXSIZE", None)
    from ktriage.debuginfo.debuginfod_http import download  # the network: only now
    from ktriage.debuginfo.debuginfod_http import opener as make_opener

    opener = make_opener(min(CONNECT_TIMEOUT, timeout))
    for base in servers:
        url = f"{base}/buildid/{bid}/{kind}"
        step, tmp = download(opener, url, target, timeout, maxtime, maxsize, USER_AGENT, CHUNK)
        if tmp is None:
            out.steps.append(f"{url}: {step}")
            continue
        got = _elf_build_id(tmp)
        if got != bid:
            os.unlink(tmp)
            note = (
                f"{url}: refused: the file sent has build ID {got}, not {bid}"
                if got
                else f"{url}: refused: the file sent is not an ELF file with a build ID"
            )
            out.steps.append(note)
            out.refused.append(note)
            continue
        os.replace(tmp, target)  # atomic: the cache only ever holds a whole, verified file
        out.path, out.source = str(target), base
        out.steps.append(f"{url}: {step}, saved as {target}")
        return out
    if len(_MISSES) > 64:
        _MISSES.clear()
    _MISSES[key] = out
    return out


_MISSES: dict[tuple, Fetch] = {}


# --- the hook find.search calls -------------------------------------------------------------------


def lookup(
    crash,
    s,
    log_ids: dict[str, str],
    check_vmlinux: Callable[[str, str], tuple[bool, str]],
    check_module: Callable[[str, str, str], tuple[bool, str]],
) -> None:
    """Fill `s` (a find.Search) from debuginfod for what the local search did not find, and say in
    `s.looked` what was asked and what happened (each line starts with "debuginfod")."""
    need_vmlinux = s.vmlinux is None
    missing = s.missing_modules()
    if not need_vmlinux and not missing:
        return
    servers = urls()
    bid, where = vmlinux_build_id(crash, log_ids) if need_vmlinux else (None, "")
    if need_vmlinux:
        if bid is None:
            s.looked.append(
                "debuginfod: vmlinux not asked: no vmlinux build ID (a log prints it only with "
                "CONFIG_STACKTRACE_BUILD_ID, 5.14+; a vmcore's VMCOREINFO has it)"
            )
        elif not servers and not cache_path(bid).is_file():
            s.looked.append(
                f"debuginfod: off (DEBUGINFOD_URLS is not set); vmlinux build ID {bid} from {where}, "
                f"not in the cache {cache_path(bid)}"
            )
        else:
            _one(s, fetch(bid), "vmlinux", lambda p: check_vmlinux(p, bid), where)
    for name in missing:
        mbid = log_ids.get(name)
        if not mbid:
            s.looked.append(
                f"debuginfod: {name}.ko not asked: the log prints no build ID for modules "
                f"(CONFIG_STACKTRACE_BUILD_ID): give --debuginfo"
            )
            continue
        if not servers and not cache_path(mbid).is_file():
            s.looked.append(f"debuginfod: off (DEBUGINFOD_URLS is not set); {name}.ko build ID {mbid}")
            continue

        def check(p: str, n: str = name, b: str = mbid) -> tuple[bool, str]:
            return check_module(p, n, b)

        _one(s, fetch(mbid), name, check, "the call trace")


def _one(s, f: Fetch, name: str, check: Callable[[str], tuple[bool, str]], where: str) -> None:
    label = "vmlinux" if name == "vmlinux" else f"{name}.ko"
    s.refused.extend(f.refused)
    line = f"debuginfod: {label} build ID {f.build_id} (from {where}): " + "; ".join(f.steps)
    if f.path is None:
        s.looked.append(line)
        return
    ok, note = check(f.path)
    how = "debuginfod cache" if f.source == "cache" else f"debuginfod {f.source}"
    if ok:
        if name == "vmlinux":
            s.vmlinux, s.vmlinux_how = f.path, how
        else:
            s.modules[name], s.modules_how[name] = f.path, how
        s.verified.append(note)
        s.looked.append(line + "; verified")
    else:
        s.refused.append(note)
        s.looked.append(line + "; refused (see refusals)")
