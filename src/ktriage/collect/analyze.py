"""A found crash -> one `ktriage.report/1` document, through ktriage's own pipeline.

The dump is read in place and never written: drgn opens it read-only, and a compressed dump
(kdump-tools' KDUMP_COMPRESSION) is decompressed into a temporary directory first, because drgn reads
only uncompressed files. The pipeline picks the debug info itself: the machine's own
(/usr/lib/debug/..., the paths distro -dbg/-debuginfo packages install) when it matches the dump's build,
else the dump's BTF, else the log decoded from the dump. When the dump cannot be read at all, the dmesg
kdump saved beside it is analyzed instead, and the report says so.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ktriage.pipeline import Options, analyze_paths
from ktriage.render.json_out import report_dict

__all__ = ["Analysis", "analyze_files", "decompress"]

CHUNK = 1 << 20


@dataclass
class Analysis:
    report: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)  # one line each, for stderr and the exit status

    @property
    def crashes(self) -> int:
        return len(self.report["crashes"]) if self.report else 0


class DecompressError(Exception):
    pass


def _open_compressed(path: str, compression: str) -> tuple[BinaryIO, subprocess.Popen[bytes] | None]:
    if compression == "gzip":
        return gzip.open(path, "rb"), None  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.open(path, "rb"), None  # type: ignore[return-value]
    if compression == "xz":
        return lzma.open(path, "rb"), None  # type: ignore[return-value]
    if compression == "lz4":
        try:
            import lz4.frame  # type: ignore[import-not-found,import-untyped,unused-ignore]

            return lz4.frame.open(path, "rb"), None  # type: ignore[no-any-return,unused-ignore]
        except ImportError:
            pass
        if not shutil.which("lz4"):
            raise DecompressError("lz4-compressed; install the lz4 command (package lz4) to read it")
        p = subprocess.Popen(["lz4", "-dc", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert p.stdout is not None
        return p.stdout, p  # type: ignore[return-value]
    raise DecompressError(f"unknown compression {compression}")


def decompress(path: str, compression: str, tmpdir: str) -> str:
    """The dump decompressed into `tmpdir`. Raises DecompressError with a one-line reason (full disk...)."""
    out = os.path.join(tmpdir, os.path.basename(path).rsplit(".", 1)[0])
    try:
        src, proc = _open_compressed(path, compression)
        with src, open(out, "wb") as dst:
            while True:
                block = src.read(CHUNK)
                if not block:
                    break
                dst.write(block)
        if proc is not None and proc.wait() != 0:
            raise DecompressError(f"lz4 -d failed (exit {proc.returncode}): corrupt or truncated")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            free = shutil.disk_usage(tmpdir).free >> 20
            raise DecompressError(
                f"no space left in {tmpdir} to decompress it ({free} MiB free; set --tmp-dir)"
            ) from None
        raise DecompressError(f"could not be decompressed ({compression}): {e}") from None
    except (EOFError, ValueError, lzma.LZMAError) as e:
        raise DecompressError(f"could not be decompressed ({compression}): corrupt or truncated ({e})") from None
    return out


def _rename_paths(d: dict[str, Any], old: str, new: str) -> None:
    for i in d.get("inputs", []):
        if i.get("path") == old:
            i["path"] = new
        if isinstance(i.get("error"), str):
            i["error"] = i["error"].replace(old, new)
        i["notes"] = [n.replace(old, new) for n in i.get("notes", [])]
    for c in d.get("crashes", []):
        src = c.get("source") or {}
        if src.get("path") == old:
            src["path"] = new


def _run(paths: list[str], opts: Options) -> dict[str, Any]:
    return report_dict(analyze_paths(paths, opts))


def _unread(d: dict[str, Any]) -> list[str]:
    return [i.get("error") or f"{i['path']}: could not be read" for i in d["inputs"] if i.get("status") == "error"]


def analyze_files(
    dump: str | None,
    dmesg: str | None,
    opts: Options,
    *,
    compression: str | None = None,
    tmp_root: str | None = None,
) -> Analysis:
    """The dump (with the dmesg beside it as the fallback), or the log alone when there is no dump."""
    problems: list[str] = []
    if dump:
        tmpdir = tempfile.mkdtemp(prefix="ktriage-collect-", dir=tmp_root)
        try:
            target = dump
            if compression:
                try:
                    target = decompress(dump, compression, tmpdir)
                except DecompressError as e:
                    problems.append(f"{dump}: {e}")
                    target = ""
            if target:
                d = _run([target], opts)
                if target != dump:
                    _rename_paths(d, target, dump)
                fmt = d["inputs"][0].get("format") if d["inputs"] else None
                if d["crashes"] and fmt == "vmcore" and not _unread(d):
                    return Analysis(d, problems)
                problems += _unread(d) or [f"{dump}: not a kernel dump (read as {fmt or 'nothing'})"]
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if not dmesg:
        return Analysis(None, problems)
    d = _run([dmesg], opts)
    problems += _unread(d)
    if dump and problems:
        d["notes"].append(f"the dump {dump} could not be analyzed; this report is from the log kdump saved beside it")
    return Analysis(d, problems)
