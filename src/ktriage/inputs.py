"""What the user gave us: files, directories, standard input; compressed or not; text or dump.

Detection is by content, never by name: a `vmcore-dmesg.txt` renamed `foo` is still a log,
and a gzip'd `messages.1.gz` is read through. Nothing here modifies or moves an input.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import zstandard

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

PEEK = 64 * 1024
CHUNK = 4 << 20
MAX_LINE = 64 * 1024  # bytes; see Lines


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


class Decoded(io.RawIOBase):
    """A compressed input decoded as far as it goes: a corrupt block or a truncated file ends the data
    (with `broken` saying where) instead of raising and losing what was read before it.

    Compressed data is fed in small pieces (`FEED`), so that one piece of a decompression bomb cannot
    expand to more than a few tens of MiB in memory at once.
    """

    FEED = 16 * 1024  # gzip/xz/bz2: output is bounded by max_length as well
    FEED_ZSTD = 1024  # zstd's decompressobj has no output bound: 1 KiB of RLE blocks is at most 32 MiB

    def __init__(self, raw: BinaryIO, kind: str) -> None:
        super().__init__()
        self.raw, self.kind = raw, kind
        self.consumed = 0  # compressed bytes read from the file
        self.produced = 0  # decompressed bytes returned
        self.broken: str | None = None
        self._pending = b""  # compressed bytes not yet fed
        self._dec = self._new()
        self._eof = False
        self._left = b""  # decoded, not yet returned (zstd may give more than asked)

    def _new(self) -> Any:
        """The kind's decompressor: zlib's, lzma's, bz2's and zstd's objects share no type (see `_step`)."""
        if self.kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.kind == "xz":
            return lzma.LZMADecompressor()
        if self.kind == "bz2":
            return bz2.BZ2Decompressor()
        return zstandard.ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        with memoryview(b) as m, m.cast("B") as view:  # released here: the caller may resize a bytearray
            if not self._left:
                self._left = self._read(len(view))
            n = min(len(view), len(self._left))
            view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def _read(self, size: int) -> bytes:
        while not self._eof:
            if not self._pending and self._needs_input():
                self._pending = self.raw.read(self.FEED)
                if not self._pending:
                    self._finish()
                    return b""
            try:
                out = self._step(max(size, 1))
            except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as e:
                self.broken = (
                    f"corrupt {self.kind} data near byte {self.consumed} of the file "
                    f"({self.produced} bytes decoded before it): {e}"
                )
                self._eof = True
                return b""
            if out:
                self.produced += len(out)
                return out
        return b""

    def _needs_input(self) -> bool:
        return bool(getattr(self._dec, "needs_input", True))

    def _step(self, size: int) -> bytes:
        d = self._dec
        if self.kind == "gzip":
            piece, self._pending = self._pending, b""
            out: bytes = d.decompress(piece, size)
            self._pending = d.unconsumed_tail
        elif self.kind in ("xz", "bz2"):
            piece = self._pending if d.needs_input else b""
            if d.needs_input:
                self._pending = b""
            out = d.decompress(piece, size)
        else:
            piece, self._pending = self._pending[: self.FEED_ZSTD], self._pending[self.FEED_ZSTD :]
            out = d.decompress(piece)
        self.consumed += len(piece) - (len(self._pending) if self.kind == "gzip" else 0)
        if d.eof:  # a member/stream ended: another may follow (concatenated .gz, multi-stream .xz/.bz2)
            rest = (d.unused_data or b"") + self._pending
            self.consumed -= len(d.unused_data or b"")
            self._pending = rest.lstrip(b"\x00")  # padding after the last stream
            if not self._pending:
                self._pending = self.raw.read(self.FEED)
            if self._pending:
                self._dec = self._new()
            else:
                self._eof = True
        return out

    def _finish(self) -> None:
        """The file ended: say so when it ended inside a member/frame."""
        self._eof = True
        if self.consumed and not self._dec.eof:
            self.broken = (
                f"truncated {self.kind} data: the file ends inside a compressed block "
                f"({self.produced} bytes decoded from its first {self.consumed})"
            )


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


class Lines(io.RawIOBase):
    """The text of an input with every line at most MAX_LINE bytes long (the rest of a longer line is dropped,
    counted, and said), and old serial captures' CR-only line endings read as lines.

    No kernel line comes near 64 KiB (printk's limit is 1 KiB): a longer one is a file without newlines, a
    binary blob or a forged line, and feeding it whole to the parser cost memory (a 1 GB line grew to 1.4 GB)
    and time. Cutting here keeps the memory of reading any input to a few chunks. Scanning for long lines
    jumps from newline to the last newline within MAX_LINE (memrchr), so ordinary text is not split.
    """

    def __init__(self, stream: BinaryIO, cr_only: bool = False, max_line: int = MAX_LINE) -> None:
        super().__init__()
        self.stream, self.cr_only, self.max_line = stream, cr_only, max_line
        self.cut = 0  # lines cut
        self.longest = 0  # bytes of the longest line cut (as far as it was seen)
        self._run = 0  # bytes of the current line already passed on
        self._skipping = False  # inside the dropped rest of a long line

    def readable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        with memoryview(b) as m, m.cast("B") as view:  # released here: the caller may resize a bytearray
            data = self.read(len(view))
            view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else max(size, 1)
        while True:
            data = self.stream.read(want)
            if not data:
                return b""
            if self.cr_only:
                data = data.replace(b"\r", b"\n")
            out = self._bound(data)
            if out:
                return out

    def _bound(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos, n, limit = 0, len(data), self.max_line
        if self._skipping:
            nl = data.find(b"\n")
            if nl < 0:
                self._run += n
                self.longest = max(self.longest, self._run)
                return b""
            self.longest = max(self.longest, self._run + nl)
            self._skipping, self._run, pos = False, 0, nl + 1  # its newline was written at the cut
        start = pos
        while pos < n:
            room = limit - self._run  # bytes the current line may still have before its newline
            end = min(n, pos + room + 1)
            last = data.rfind(b"\n", pos, end)
            if last >= 0:  # every line up to `last` is short enough: jump over them
                self._run, pos = 0, last + 1
                continue
            if n - pos <= room:  # the line goes on in the next chunk, still short enough
                self._run += n - pos
                break
            cut = pos + room
            out += (data[start:cut], b"\n")
            self.cut += 1
            nl = data.find(b"\n", cut)
            if nl < 0:
                self._skipping, self._run = True, self._run + n - pos
                self.longest = max(self.longest, self._run)
                return b"".join(out)
            self.longest = max(self.longest, self._run + nl - pos)
            self._run, pos = 0, nl + 1
            start = pos
        out.append(data[start:])
        return b"".join(out)

    def close(self) -> None:
        self.stream.close()
        super().close()


def input_notes(stream: BinaryIO) -> tuple[list[str], str | None]:
    """(notes, why the input ended early or None) gathered while an input was read."""
    notes: list[str] = []
    broken = None
    lines = stream if isinstance(stream, Lines) else None
    inner = lines.stream if lines is not None else stream
    if isinstance(inner, io.BufferedReader):
        inner = inner.raw
    if lines is not None and lines.cut:
        notes.append(
            f"{lines.cut} line(s) longer than {lines.max_line // 1024} KiB cut to that length before parsing "
            f"(longest seen: {lines.longest} bytes)"
        )
    if isinstance(inner, Decoded) and inner.broken:
        broken = inner.broken
    return notes, broken


def open_input(path: str) -> tuple[Input, BinaryIO]:
    """Open and identify one input. Raises InputError with a one-line reason.

    Text inputs come back wrapped in `Lines` (bounded lines); `input_notes` tells what was cut and whether
    a compressed input ended early."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        shown = printable_path(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"{shown}: no such file or directory") from None
        except PermissionError:
            raise InputError(f"{shown}: permission denied") from None
        except OSError as e:
            raise InputError(f"{shown}: cannot read: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{shown}: directory holds no files")
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISBLK(st.st_mode):
            what = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file"
            raise InputError(
                f"{shown}: {what}, not read (it may never end); pipe it to standard input: ktriage analyze - < ..."
            )
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as e:
            raise InputError(f"{shown}: cannot open: {e.strerror}") from None
    # a standard input that is not a BufferedReader still has readinto, which typing's BinaryIO does not declare
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, raw))
    comp = None
    try:
        head = buffered.peek(PEEK)[:PEEK]
        comp = _compression(head)
        stream: BinaryIO = buffered
        if comp:
            dec = Decoded(buffered, comp)
            stream = io.BufferedReader(dec, buffer_size=PEEK)
            head = stream.peek(PEEK)[:PEEK]
            if not head and dec.broken:
                raise InputError(f"{printable_path(path)}: {dec.broken}")
    except OSError as e:
        raise InputError(f"{printable_path(path)}: cannot read: {e}") from None
    kind = classify(head)
    if kind in TEXT_KINDS:
        cr_only = b"\r" in head and b"\n" not in head
        stream = Lines(stream, cr_only=cr_only)  # type: ignore[assignment]
    return Input(path, kind, comp), stream


TEXT_KINDS = ("log", "journal-json", "journal-export", "crash-output")


def printable_path(path: str) -> str:
    """A file name as it may be shown on a terminal: control characters (an escape sequence in a name
    could rewrite the screen) and undecodable bytes (surrogate escapes) written as escapes."""
    if path.isprintable():
        return path
    out = []
    for ch in path:
        if ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8, as os.fsdecode keeps it
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


class JournalJson:
    """`journalctl -o json`: one object a line; keep kernel messages only. A line no journal writes (nested
    thousands deep, MESSAGE a list of non-bytes) is a bad line, counted in `bad`, not an error."""

    def __init__(self) -> None:
        self.bad = 0

    def __call__(self, line: str) -> str | None:
        line = line.strip()
        if not line.startswith("{"):
            return None
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            self.bad += 1
            return None
        if not isinstance(obj, dict):
            self.bad += 1
            return None
        if obj.get("_TRANSPORT") not in (None, "kernel") and obj.get("SYSLOG_IDENTIFIER") != "kernel":
            return None
        msg = obj.get("MESSAGE")
        if isinstance(msg, list):  # binary-safe form: a list of byte values
            if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in msg):
                self.bad += 1
                return None
            msg = bytes(msg).decode("utf-8", "replace")
        return msg if isinstance(msg, str) else None

    def notes(self) -> list[str]:
        return [f"{self.bad} journal line(s) that are not journal JSON records skipped"] if self.bad else []


def journal_json_line(line: str) -> str | None:
    """One `journalctl -o json` line to its kernel message (see JournalJson)."""
    return JournalJson()(line)


def journal_export_filter() -> Callable[[str], str | None]:
    """`journalctl -o export`: KEY=value records separated by blank lines; MESSAGE= is the text."""

    def f(line: str) -> str | None:
        if line.startswith("MESSAGE="):
            return line[len("MESSAGE=") :]
        return None

    return f
