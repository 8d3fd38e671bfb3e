"""What the user gave us: files, directories, standard input; compressed or not; text or dump.

Detection is by content, never by name: a `vmcore-dmesg.txt` renamed `foo` is still a log,
and a gzip'd `messages.1.gz` is read through. Nothing here modifies or moves an input.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

PEEK = 64 * 1024


class InputError(Exception):
    """An input that cannot be read at all; the message is one line for the user."""


@dataclass(frozen=True)
class Input:
    path: str  # as the user named it ("-" for stdin)
    kind: str  # log, journal-json, journal-export, crash-output, vmcore, elf, ureport, binary, empty
    compression: str | None = None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bz2"),
)


def _decompressing(raw: BinaryIO, compression: str | None) -> BinaryIO:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if compression == "bz2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[return-value]
    return raw


def _compression(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def classify(head: bytes) -> str:
    """What a (decompressed) byte prefix is."""
    if not head:
        return "empty"
    if head.startswith(b"\x7fELF"):
        e_type = int.from_bytes(head[16:18], "little" if head[5:6] == b"\x01" else "big")
        return "vmcore" if e_type == 4 else "elf"
    if head.startswith(b"KDUMP   ") or head.startswith(b"DISKDUMP"):
        return "vmcore"
    if head.startswith(b"makedumpfile"):
        return "vmcore"
    if head.startswith(b"QEVM") or head.startswith(b"QEMU"):
        return "binary"
    sample = head[:PEEK]
    if sample.count(b"\x00") > len(sample) // 100 + 1:
        return "binary"
    text = sample.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    printable = sum(1 for ch in text[:8192] if ch.isprintable() or ch in "\r\n\t\x1b")
    if bad > len(text) // 4 or printable < min(len(text), 8192) * 0.75:
        return "binary"
    stripped = text.lstrip()
    if stripped.startswith("__CURSOR=") or "\n__CURSOR=" in text[:4096]:
        return "journal-export"
    if stripped.startswith("{") and '"ureport_version"' in text[:8192]:
        return "ureport"  # ABRT/FAF microreport: a parsed problem, not kernel text
    if stripped.startswith("{") and '"MESSAGE"' in text[:8192]:
        return "journal-json"
    try:
        from ktriage.crashout import looks_like_crash_output
    except ImportError:  # pragma: no cover - crashout is part of the package
        return "log"
    return "crash-output" if looks_like_crash_output(text) else "log"


def expand(paths: list[str]) -> Iterator[str]:
    """Files as given; directories walked in sorted order (/var/crash holds a folder per crash)."""
    for p in paths:
        if p == "-":
            yield p
            continue
        path = Path(p)
        if path.is_dir():
            found = False
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if os.path.isfile(full):
                        found = True
                        yield full
            if not found:
                yield p  # reported as an empty directory
        else:
            yield p


def open_input(path: str) -> tuple[Input, BinaryIO]:
    """Open and identify one input. Raises InputError with a one-line reason."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"{path}: no such file or directory") from None
        except PermissionError:
            raise InputError(f"{path}: permission denied") from None
        except OSError as e:
            raise InputError(f"{path}: cannot read: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path}: directory holds no files")
        try:
            raw = open(path, "rb")
        except OSError as e:
            raise InputError(f"{path}: cannot open: {e.strerror}") from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    try:
        head = buffered.peek(PEEK)[:PEEK]
        comp = _compression(head)
        stream: BinaryIO = buffered
        if comp:
            stream = io.BufferedReader(_decompressing(buffered, comp), buffer_size=1 << 20)  # type: ignore[arg-type]
            head = stream.peek(PEEK)[:PEEK]  # type: ignore[attr-defined]
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as e:
        raise InputError(f"{path}: corrupt {comp or 'compressed'} data: {e}") from None
    return Input(path, classify(head), comp), stream


def journal_json_line(line: str) -> str | None:
    """`journalctl -o json`: one object a line; keep kernel messages only."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if obj.get("_TRANSPORT") not in (None, "kernel") and obj.get("SYSLOG_IDENTIFIER") != "kernel":
        return None
    msg = obj.get("MESSAGE")
    if isinstance(msg, list):  # binary-safe form: a list of byte values
        msg = bytes(msg).decode("utf-8", "replace")
    return msg if isinstance(msg, str) else None


def journal_export_filter() -> Callable[[str], str | None]:
    """`journalctl -o export`: KEY=value records separated by blank lines; MESSAGE= is the text."""

    def f(line: str) -> str | None:
        if line.startswith("MESSAGE="):
            return line[len("MESSAGE=") :]
        return None

    return f
