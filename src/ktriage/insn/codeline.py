"""Parse the oops `Code:` line into bytes plus the position of the trapping instruction.

The kernel prints the code around the faulting IP in arch-specific ways:

* x86 (64 and 32 bit): hex bytes, the first byte of the faulting instruction in `<xx>`
  (`Code: 48 8b 2b 48 8d 7d 58 <80> 3c 02 00`). Bytes before the mark start at an arbitrary
  byte, possibly in the middle of an instruction. Very old kernels printed no mark and started
  at the IP; when the kernel could not read the bytes it says `Bad RIP value.` or
  `Unable to access opcode bytes at RIP 0x...`.
* arm64 / arm: 32-bit words as numbers (`d343fc02 (38e16841)`), the faulting word in
  parentheses; Thumb prints 16-bit halfwords (`4620 (f8d3)`). Words are little-endian in
  memory, so `38e16841` is the bytes `41 68 e1 38`. `bad PC value` when unreadable.

Consoles interleave and cut lines; a token that is not a well-formed byte/word ends the usable
data and marks the result incomplete instead of guessing.
"""

from __future__ import annotations

import dataclasses
import re

from ktriage.model import CodeBytes

X86_ARCHES = ("x86_64", "i386", "x86")
WORD_ARCHES = ("arm64", "arm", "aarch64")

_UNREADABLE = [
    # x86 show_opcodes(): "at RIP 0x..." (v5.x) or "at 0x..." (v6.x); either way the address printed
    # is the start of the window, IP - 42 (PROLOGUE_SIZE), not the IP itself
    (
        re.compile(r"Unable to access opcode bytes at (?:(?:RIP|IP|EIP) )?(0x[0-9a-fA-F]+)"),
        "the kernel could not read the code bytes at {0} (the window start, IP - 42: the IP or the 42 bytes "
        "before it are not mapped, e.g. a function at the start of a module's text, or user memory gone)",
    ),
    (re.compile(r"Bad (?:RIP|EIP) value"), "the kernel could not read the code at the IP (Bad RIP value)"),
    (re.compile(r"[Bb]ad PC value"), "the kernel could not read the code at the PC (bad PC value)"),
]


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

# A kernel prints 64 bytes on x86 (42 before the IP, 22 from it) and 5 words on arm64: a longer `Code:`
# line is bad input (a corrupted console, a forged log), and decoding it whole would cost time and memory
# that grow faster than the line. Keep this many tokens (bytes, or words) on each side of the mark.
MAX_TOKENS_BEFORE = 128
MAX_TOKENS_AFTER = 128


def _strip_prefix(line: str) -> str:
    """Return the text after `Code:` (the caller may pass the whole console line)."""
    idx = line.find("Code:")
    return line[idx + 5 :] if idx >= 0 else line


def _unreadable(text: str, arch: str, raw: str) -> CodeBytes | None:
    for rx, note in _UNREADABLE:
        m = rx.search(text)
        if m:
            return CodeBytes(
                data=b"", trap_offset=None, arch=arch, complete=False, raw=raw, note=note.format(*m.groups())
            )
    return None


def _parse_x86(tokens: list[str], arch: str, raw: str) -> CodeBytes:
    data = bytearray()
    mark: int | None = None
    note: str | None = None
    complete = True
    for tok in tokens:
        marked = len(tok) == 4 and tok[0] == "<" and tok[-1] == ">"
        body = tok[1:-1] if marked else tok
        if len(body) != 2 or not _is_hex(body) or (tok[0] == "<") != marked:
            complete = False
            note = f"Code: line cut or mangled at token {tok!r} after {len(data)} bytes"
            break
        if marked:
            mark = len(data)
        data.append(int(body, 16))
    if mark is None and complete:
        note = "no <xx> mark: old format, the bytes are assumed to start at the IP"
        mark = 0 if data else None
        complete = False
    elif mark is None:
        note = (note or "") + "; the marked byte is missing"
    return CodeBytes(bytes(data), mark, arch, complete, raw, note)


def _parse_words(tokens: list[str], arch: str, raw: str) -> CodeBytes:
    data = bytearray()
    mark: int | None = None
    note: str | None = None
    complete = True
    width = None
    for tok in tokens:
        marked = tok.startswith("(") and tok.endswith(")")
        body = tok[1:-1] if marked else tok
        if width is None and len(body) in (4, 8):
            width = len(body)
        if len(body) != width or not _is_hex(body) or (tok[0] == "(") != marked:
            complete = False
            note = f"Code: line cut or mangled at token {tok!r} after {len(data)} bytes"
            break
        if marked:
            mark = len(data)
        data += int(body, 16).to_bytes(width // 2, "little")
    if mark is None:
        complete = False
        note = (note + "; " if note else "") + "the marked (faulting) word is missing"
    if width == 4:
        note = (note + "; " if note else "") + "Thumb halfwords"
    return CodeBytes(bytes(data), mark, arch, complete, raw, note)


def _is_hex(s: str) -> bool:
    return bool(s) and all(c in "0123456789abcdefABCDEF" for c in s)


def parse_code_line(line: str, arch: str) -> CodeBytes | None:
    """Parse a `Code:` line (or the text after `Code: `) for `arch`.

    Returns None when the text holds no code at all (empty line), a CodeBytes with
    `complete=False` and a `note` when the kernel could not read the bytes or the console
    cut the line, so that analyzers can say *why* there is no listing.
    """
    raw = _ANSI.sub("", line).replace("\r", "").rstrip("\n")  # serial consoles: CRLF, colour escapes
    text = _strip_prefix(raw).strip()
    if not text:
        return None
    arch = arch or ("arm64" if re.search(r"\([0-9a-fA-F]{8}\)", text) else "x86_64")
    bad = _unreadable(text, arch, raw)
    if bad is not None:
        return bad
    tokens, cut = _window(text.split())
    code = _parse_tokens(tokens, arch, raw)
    if cut:
        code = dataclasses.replace(code, note=f"{cut}; {code.note}" if code.note else cut)
    return code


def _window(tokens: list[str]) -> tuple[list[str], str | None]:
    """At most MAX_TOKENS_BEFORE tokens before the marked one and MAX_TOKENS_AFTER from it (see above)."""
    n = len(tokens)
    if n <= MAX_TOKENS_BEFORE + MAX_TOKENS_AFTER:
        return tokens, None
    mark = next((i for i, t in enumerate(tokens) if t[:1] in "<(" and t[-1:] in ">)"), None)
    lo = 0 if mark is None else max(0, mark - MAX_TOKENS_BEFORE)
    hi = min(n, lo + MAX_TOKENS_BEFORE + MAX_TOKENS_AFTER if mark is None else mark + MAX_TOKENS_AFTER)
    note = (
        f"Code: line of {n} tokens, far more than a kernel prints (64 bytes on x86): only the {hi - lo} "
        f"around the marked one are used"
    )
    return tokens[lo:hi], note


def _parse_tokens(tokens: list[str], arch: str, raw: str) -> CodeBytes:
    if arch in WORD_ARCHES or (arch not in X86_ARCHES and len(tokens[0].strip("()")) in (4, 8)):
        return _parse_words(tokens, arch, raw)
    return _parse_x86(tokens, arch, raw)
