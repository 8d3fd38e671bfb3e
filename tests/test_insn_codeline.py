"""Code: line parsing and window decoding on real Code: lines from the syzkaller corpus.

Every expected instruction was checked by hand with objdump on the same bytes:
    python: write the bytes to /tmp/code_N.bin, then
    objdump -D -b binary -m i386:x86-64 --start-address=0xNN /tmp/code_N.bin
    (arm64: llvm-mc-14 --disassemble -triple=aarch64 on the little-endian bytes)
The objdump line that was compared is quoted next to each assertion.
"""

from __future__ import annotations

from ktriage.insn.codeline import parse_code_line
from ktriage.insn.decode import decode, listing
from realdata import corpus_path, needs_corpus


def code_line(name: str, nth: int = 0) -> str:
    lines = [line for line in corpus_path(name).read_text(errors="replace").splitlines() if "Code:" in line]
    return lines[nth]


pytestmark = needs_corpus


def test_x86_mark_and_bytes():
    cb = parse_code_line(code_line("662"), "x86_64")
    assert cb.complete and cb.trap_offset == 0x2A and len(cb.data) == 64
    assert cb.data[0x2A:0x2E] == bytes.fromhex("803c0200")


def test_x86_decode_lands_on_mark_kasan_check():
    d = decode(parse_code_line(code_line("662"), "x86_64"))
    # objdump --start-address=0x1c:  2a: 80 3c 02 00   cmpb $0x0,(%rdx,%rax,1)
    assert d.trap.offset == 0x2A and d.trap.mnemonic == "cmpb"
    assert d.trap.op_str == "$0x0,(%rdx,%rax,1)"  # objdump's text, scale 1 included
    # objdump:  1c: mov (%rbx),%rbp / 1f: lea 0x58(%rbp),%rdi / 23: mov %rdi,%rdx / 26: shr $0x3,%rdx
    before = [(i.offset, i.cs.mnemonic) for i in d.before][-4:]
    assert before == [(0x1C, "mov"), (0x1F, "lea"), (0x23, "mov"), (0x26, "shr")]
    marked = [line for line in listing(d) if ":*" in line]
    assert len(marked) == 1 and marked[0].lstrip().startswith("2a:*")


def test_x86_garbage_prefix_flagged_not_trusted():
    # 113's window starts inside an instruction: "00 00 00 e8 0c 55 58 fd" decodes as junk adds
    d = decode(parse_code_line(code_line("113"), "x86_64"))
    # objdump --start-address=0x2b:  2b: 0f 0b   ud2
    assert d.trap.cs.mnemonic == "ud2" and d.trap.offset == 0x2B
    assert d.sync > d.insns[0].offset  # the first instructions are marked '?'
    assert any(":?" in line for line in listing(d))


def test_arm64_words_little_endian():
    cb = parse_code_line(code_line("536"), "arm64")
    assert cb.trap_offset == 0x10 and cb.data[0x10:0x14] == bytes.fromhex("4168e138")
    d = decode(cb)
    # llvm-mc -triple=aarch64: add x0, x19, #24 / mov x1, #0xa00000000000 / movk x1, #0xdfff, lsl #48 /
    #                          lsr x2, x0, #3 / ldrsb w1, [x2, x1]
    assert [i.cs.mnemonic for i in d.insns] == ["add", "mov", "movk", "lsr", "ldrsb"]
    assert d.trap.op_str == "w1, [x2, x1]"


def test_unable_to_access_opcode_bytes():
    cb = parse_code_line(code_line("565"), "x86_64")  # "Code: Unable to access opcode bytes at RIP 0xffffffffffffffe4."
    assert cb.data == b"" and not cb.complete and "0xffffffffffffffe4" in cb.note
    assert decode(cb).trap is None


def test_bad_rip_value():
    cb = parse_code_line(code_line("480"), "x86_64")  # "Code: Bad RIP value."
    assert cb.data == b"" and not cb.complete and "Bad RIP value" in cb.note


def test_console_cut_line_is_partial_not_guessed():
    # 453: "Code: 73 01 c3 ... 90 90 83 3d 854" -- the console cut the line before the <xx> mark
    cb = parse_code_line(code_line("453"), "x86_64")
    assert not cb.complete and cb.trap_offset is None and len(cb.data) == 28
    d = decode(cb)
    assert d.trap is None and d.insns == () and d.problem


def test_objdump_style_att_text():
    # 662 objdump --start-address=0x1c:  1c: mov (%rbx),%rbp  1f: lea 0x58(%rbp),%rdi  23: mov %rdi,%rdx
    #                                    26: shr $0x3,%rdx  (capstone: movq/leaq/shrq, objdump drops the suffix)
    d = decode(parse_code_line(code_line("662"), "x86_64"))
    got = [(i.offset, f"{i.mnemonic} {i.op_str}") for i in d.before][-4:]
    assert got == [
        (0x1C, "mov (%rbx),%rbp"),
        (0x1F, "lea 0x58(%rbp),%rdi"),
        (0x23, "mov %rdi,%rdx"),
        (0x26, "shr $0x3,%rdx"),
    ]


def test_unable_to_access_opcode_bytes_v6_format():
    # v6.x show_opcodes(): "Code: Unable to access opcode bytes at 0x%lx." (no "RIP"); the address is IP - 42
    cb = parse_code_line("Code: Unable to access opcode bytes at 0xffffffffc029afdd.", "x86_64")
    assert cb.data == b"" and not cb.complete and "0xffffffffc029afdd" in cb.note and "IP - 42" in cb.note


def test_arm32_code_line():
    # 551 (arm): "e5973000 e2169602 13e09000 e1a06506 (e5934008)" -> ldr r4, [r3, #8]
    d = decode(parse_code_line(code_line("551"), "arm"))
    assert d.trap.cs.mnemonic == "ldr" and d.trap.op_str == "r4, [r3, #8]"
