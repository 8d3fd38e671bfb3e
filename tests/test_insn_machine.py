"""Machine-level analyzers on real oopses, end to end through the log reader.

Inputs are real: the syzkaller corpus and a CentOS 7 nf_conntrack oops (tests/realdata.py finds both). Each expected
instruction was checked by hand with objdump on the Code: bytes written to a file
(`objdump -D -b binary -m i386:x86-64 --start-address=N`, arm64 with `llvm-mc-14 --disassemble
-triple=aarch64`), and each expected number was computed by hand from the register lines quoted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ktriage.analyzers import AnalysisContext, run_analyzers
from ktriage.insn.codeline import parse_code_line
from realdata import corpus_log, corpus_path, seed

logs = pytest.importorskip("ktriage.logs", reason="log reader (ktriage.logs.parse_log_text) not importable")


def analyze(path: Path | str, kind: str | None = None) -> AnalysisContext:
    """A corpus file by name, or a path (the public crash report)."""
    if isinstance(path, str):  # header lines, a blank line, then the raw console log
        text = corpus_log(path)
    else:
        text = path.read_text(errors="replace")
    crashes = logs.parse_log_text(text)
    crash = next(c for c in crashes if kind is None or c.kind == kind)
    ctx = AnalysisContext(crash)
    skipped = run_analyzers(ctx)
    assert not [s for s in skipped if "internal error" in s.reason], skipped
    return ctx


def only(ctx: AnalysisContext, code: str):
    found = [f for f in ctx.findings if f.code == code]
    assert found, f"no {code}: {[f.code for f in ctx.findings]}"
    return found[0]


def test_seed000_null_deref_without_code_line():
    # seed 000: "RAX: 0000000000000000", "CR2: 0000000000000a30", no Code: line at all
    ctx = analyze(seed("000"))
    assert ctx.finding("insn.trap") is None
    guess = only(ctx, "regs.likely-base")
    assert guess.data["base_candidates"][0] == "RAX" and guess.data["base_value"] == 0
    assert guess.data["offset"] == 0xA30 and guess.confidence in ("medium", "low")
    assert "registers" in guess.summary  # says it is inferred from registers only
    null = only(ctx, "value.null-offset")
    assert null.data["offset"] == 0xA30
    assert "RAX" in null.summary and "0xa30" in null.summary and "NULL" in null.summary


def test_gpf_kasan_shadow_of_null_member():
    # 662 "general protection fault, probably for non-canonical address 0xdffffc000000000b"
    # objdump --start-address=0x1c: 1c mov (%rbx),%rbp; 1f lea 0x58(%rbp),%rdi; 23 mov %rdi,%rdx;
    #                               26 shr $0x3,%rdx; 2a cmpb $0x0,(%rdx,%rax,1)
    # dump: RAX dffffc0000000000 RDX 000000000000000b RDI 0000000000000058 RBP 0000000000000000
    ctx = analyze("662", "gpf")
    acc = only(ctx, "insn.bad-access")
    assert (acc.data["base"], acc.data["index"], acc.data["disp"], acc.data["size"]) == ("RDX", "RAX", 0, 1)
    assert acc.data["ea"] == 0xDFFFFC000000000B and acc.data["match"] is True and acc.confidence == "certain"
    nc = only(ctx, "value.non-canonical")
    assert nc.data["kasan_shadow_of"] == [0x58, 0x5F]  # (0xb << 3) .. +7
    assert only(ctx, "value.null-offset").data["offset"] == 0x58
    flow = only(ctx, "dataflow.base-origin")
    assert flow.data["register"] == "RDX" and flow.data["consistent"] is True
    regs_traced = [s["reg"] for s in flow.data["steps"]]
    assert regs_traced == ["RDX", "RDX", "RDI", "RBP"]
    assert "[RBX]" in flow.data["steps"][-1]["text"]  # RBP was loaded from [RBX]


def test_paging_request_scaled_index():
    # 372 osq_lock: objdump 2a: 4c 03 2c ed 60 c0 39 91  add -0x6ec63fa0(,%rbp,8),%r13
    # RBP ffffffff967948df: (0xffffffff967948df * 8 - 0x6ec63fa0) mod 2^64 = 0xfffffffc45040758 = CR2
    ctx = analyze("372", "paging-request")
    acc = only(ctx, "insn.bad-access")
    assert acc.data["base"] is None and acc.data["index"] == "RBP" and acc.data["scale"] == 8
    assert acc.data["disp"] == -0x6EC63FA0 and acc.data["ea"] == 0xFFFFFFFC45040758 and acc.data["match"]


def test_arm64_kasan_null_member():
    # 536: "Unable to handle kernel paging request at virtual address dfffa00000000003"
    # llvm-mc: add x0, x19, #24; mov x1, #0xa00000000000; movk x1, #0xdfff, lsl #48; lsr x2, x0, #3;
    #          ldrsb w1, [x2, x1]      dump: x19 0, x0 0x18, x2 0x3, x1 dfffa00000000000
    ctx = analyze("536")
    trap = only(ctx, "insn.trap")
    assert trap.data["mnemonic"] == "ldrsb"
    acc = only(ctx, "insn.bad-access")
    assert (acc.data["base"], acc.data["index"], acc.data["size"]) == ("x2", "x1", 1)
    assert acc.data["ea"] == 0xDFFFA00000000003 and acc.data["match"] is True
    assert only(ctx, "value.null-offset").data["offset"] == 0x18
    flow = only(ctx, "dataflow.base-origin")
    assert [s["reg"] for s in flow.data["steps"]] == ["x2", "x0"] and flow.data["consistent"] is True
    assert "x19 = 0x0" in flow.data["stop"]
    assert ctx.finding("value.bit-flip") is None  # a KASAN shadow address is not a bit flip


def test_err_ptr_first_argument():
    # 175 memcmp+0x9: objdump 22 push %rbp (function entry = 0x2b - 0x9); 2b movzbl (%rdi),%eax
    # RDI ffffffffffffffd8 = -40 = -ELOOP (asm-generic/errno.h: ELOOP 40); CR2 ffffffffffffffd8
    ctx = analyze("175", "paging-request")
    acc = only(ctx, "insn.bad-access")
    assert acc.data["base"] == "RDI" and acc.data["match"] is True
    err = only(ctx, "value.err-ptr")
    assert err.data["errno"] == 40 and err.data["name"] == "-ELOOP"
    flow = only(ctx, "dataflow.base-origin")
    assert "first argument" in flow.data["stop"] and "+0x22" in flow.data["stop"]


def test_retpoline_to_spinlock_magic():
    # 358 __x86_indirect_thunk_rax: objdump 27: mov %rax,(%rsp); 2b: ret   RAX dead4ead00000000
    ctx = analyze("358", "gpf")
    assert only(ctx, "insn.trap").data["mnemonic"].startswith("ret")
    br = only(ctx, "insn.branch")
    assert br.data["via"] == "RAX" and br.data["target"] == 0xDEAD4EAD00000000
    assert only(ctx, "value.magic").data["magic"] == 0xDEAD4EAD
    assert ctx.finding("value.non-canonical") is not None


def test_bug_ud2_is_not_a_memory_fault():
    # 352 "kernel BUG at mm/page_alloc.c:3112!": objdump 2a: 0f 0b  ud2
    ctx = analyze("352", "bug")
    assert only(ctx, "insn.trap-bug").data["trap"] == "ud2"
    assert ctx.finding("insn.bad-access") is None


def test_call_through_bad_function_pointer():
    # 480 "RIP: 0010:0x86", "Code: Bad RIP value."
    ctx = analyze("480", "null-deref")
    ip = only(ctx, "value.ip-invalid")
    assert ip.data["ip"] == 0x86 and ip.data["region"] == "small"
    assert "Bad RIP value" in only(ctx, "insn.decode-partial").summary
    assert ctx.finding("insn.trap") is None


@pytest.mark.parametrize("name, text", [("453", "cut or mangled"), ("565", "could not read the code bytes")])
def test_truncated_code_gives_partial_finding_only(name, text):
    # 453: Code line cut by the console ("... 90 90 83 3d 854"); 565: "Unable to access opcode bytes at RIP".
    # Both follow a user-mode IP line (453 "RIP: 0033:0x7fdd4d945370", 565 "RIP: 0023:0xe"): the log reader
    # leaves the user block out of the crash, so no instruction is claimed; the real line is then given to
    # the analyzers directly as if it were the kernel's.
    ctx = analyze(name)
    assert ctx.finding("insn.trap") is None and ctx.finding("insn.bad-access") is None
    line = next(x for x in corpus_path(name).read_text(errors="replace").splitlines() if "Code:" in x)
    ctx2 = AnalysisContext(dataclasses.replace(ctx.crash, code=parse_code_line(line, "x86_64"), arch="x86_64"))
    run_analyzers(ctx2)
    part = only(ctx2, "insn.decode-partial")
    assert text in part.summary and part.listing == ()
    assert ctx2.finding("insn.trap") is None


def test_arm64_list_poison_register():
    # 695: "x21: dead000000000110" = LIST_POISON1 (0xdead000000000100) + 0x10
    ctx = analyze("695")
    regs = only(ctx, "regs.classified")
    line = next(e for e in regs.evidence if e.startswith("x21 "))
    assert "LIST_POISON1" in line and "+ 0x10" in line
    assert "list-poison" in regs.data["registers"]["x21"]


def test_poison_end_and_kaslr_layout_values():
    # lab oob-small-object: "RAX: a56b6b6b6b6b6b6b" = the last 8 bytes of a freed object (0x6b * 7, POISON_END 0xa5)
    from ktriage.insn import values as V

    kinds = {c.kind: c for c in V.classify(0xA56B6B6B6B6B6B6B, "x86_64")}
    assert kinds["slab-poison"].detail["byte"] == 0x6B and "POISON_END" in kinds["slab-poison"].text
    assert "non-canonical" in kinds
    assert V.byte_poison(0xA5A5A5A5A5A5A5A5)[1] == "POISON_END"
    assert V.byte_poison(0xA56B6B6B6B6B6B00) is not None and V.byte_poison(0xA5006B6B6B6B6B6B) is None
    # lab uaf-poison "GS:ffff99825ec00000" (memory KASLR) vs syzkaller "GS:ffff8880b9a00000" (fixed layout)
    assert V.x86_64_layout(0xFFFF99825EC00000) == "randomized"
    assert V.x86_64_layout(0xFFFF8880B9A00000) == "fixed"
    assert V.x86_64_layout(0) is None
    # lab null-member-work "RSP: 0018:ffffa4950006be90" is a vmalloc'ed stack: not "direct map" once randomized
    assert V.region(0xFFFFA4950006BE90, "x86_64", layout="randomized")[0] == "kernel-data"
    assert V.region(0xFFFF8880B9A00000, "x86_64", layout="fixed")[0] == "direct-map"
