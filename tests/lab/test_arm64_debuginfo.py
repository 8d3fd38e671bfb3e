"""Issue 6 on arm64: the arm64 lab's console logs + its vmlinux/crashmod.ko DWARF (no vmcore).

The arm64 lab (`python3 lab/lab.py arm64`, part of `lab.py all`) cross-builds linux-source-6.1 for arm64
and crashes it under `qemu-system-aarch64 -M virt`; lab.json names it under "arm64".

Reference: the cross binutils' `aarch64-linux-gnu-addr2line -i -f` on the same files, at addresses the test
computes itself from the oops' `symbol+offset` and the ELF symbol table (pyelftools): for a .ko the symbol's
section offset (`-j <section>`), for vmlinux its address. Return addresses are looked up at offset-1 (also
at +0x0: the arm64 unwinder follows frame records, so `func+0x0` is a return address after a noreturn call
that ended the function before); the faulting pc (the `pc :` line, printed again as the first
`Call trace:` entry) and the pc an exception interrupted (the entry after an `el1h_64_irq`/`el1h_64_sync`
vector) exactly. A leaf function has no frame record, so its caller is only in the `lr :` line: when the
trace skips it, it is expected (as a return address) right after the pc entry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
from tests.lab.conftest import analyze_log as _analyze
from tests.lab.conftest import debug_opts as _opts
from tests.lab.conftest import findings_of as _find
from tests.lab.conftest import lab_cache, skip_on_request

A2L = "aarch64-linux-gnu-addr2line"
OBJDUMP = "aarch64-linux-gnu-objdump"
VECTOR = re.compile(r"^el1[th]?_64_(?:irq|fiq|sync|error)$")


@pytest.fixture(scope="module")
def a64() -> dict:
    skip_on_request()
    manifest = lab_cache() / "lab.json"
    lab = json.loads(manifest.read_text()).get("arm64") if manifest.exists() else None
    if not lab:
        pytest.skip(f"no arm64 lab in {manifest}: run `python3 lab/lab.py arm64` (or `lab.py all`)")
    for key in ("vmlinux", "crashmod_ko"):
        if not Path(lab[key]).exists():
            pytest.skip(f"arm64 lab file {lab[key]} missing: run `python3 lab/lab.py arm64`")
    if shutil.which(A2L) is None:
        pytest.skip(f"{A2L} (binutils-aarch64-linux-gnu, the reference) missing")
    return lab


def _scenario(lab: dict, name: str) -> dict:
    s = lab["scenarios"].get(name)
    if not s or not s.get("ok"):
        pytest.skip(f"arm64 scenario {name!r} has no good run: run `python3 lab/lab.py arm64 {name}`")
    return s


@lru_cache(maxsize=4)
def _symtab(path: str) -> dict[str, list[tuple[int, int, str | None]]]:
    """name -> [(value, size, section name or None for vmlinux)] of the STT_FUNC symbols (pyelftools)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out: dict[str, list] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        rel = elf.header["e_type"] == "ET_REL"
        tab = next(s for s in elf.iter_sections() if isinstance(s, SymbolTableSection))
        for sym in tab.iter_symbols():
            if sym["st_info"]["type"] != "STT_FUNC" or not isinstance(sym["st_shndx"], int):
                continue
            sec = elf.get_section(sym["st_shndx"]).name if rel else None
            out.setdefault(sym.name, []).append((sym["st_value"], sym["st_size"], sec))
    return out


def _addr2line(path: str, section: str | None, addr: int) -> list[tuple[str, str, int]]:
    cmd = [A2L, "-i", "-f", "-e", path] + (["-j", section] if section else []) + [f"{addr:#x}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    chain = []
    for k in range(0, len(out), 2):
        fn, loc = out[k], out[k + 1]
        m = re.match(r"(.*):(\d+|\?)", loc.split(" (discriminator")[0])
        chain.append((fn, m.group(1), int(m.group(2)) if m.group(2) != "?" else 0))
    return chain


def _same_file(a: str, b: str) -> bool:
    a, b = os.path.normpath(a), os.path.normpath(b)
    return a.endswith(b.lstrip("./")) or b.endswith(a.lstrip("./"))


def _lr(crash):
    from ktriage.logs.frames import parse_location

    for line in crash.lines:
        m = re.match(r"^\s*lr\s*:\s*(\S+\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[\w+\])?)", line)
        if m:
            return parse_location(m.group(1))
    return None


def _key(loc):
    return (loc.symbol, loc.offset, loc.module) if loc is not None else None


def _reference(lab: dict, crash) -> list[tuple[str, list[tuple[str, str, int]] | None]]:
    """(frame text, addr2line chain) for the pc and every call trace entry, addresses computed here."""
    out = []
    entries = [(crash.ip, True)] if crash.ip is not None and crash.ip.symbol else []
    lr = _lr(crash)
    for n, f in enumerate(crash.frames):
        prev = crash.frames[n - 1].symbol if n else None
        pc_again = n == 0 and _key(f) == _key(crash.ip)
        entries.append((f, pc_again or bool(prev and VECTOR.match(prev))))
        if (
            pc_again
            and lr is not None
            and lr.symbol != crash.ip.symbol
            and (len(crash.frames) < 2 or _key(crash.frames[1]) != _key(lr))
        ):
            entries.append((lr, False))  # the leaf's caller, only in the link register
    for loc, exact in entries:
        path = lab["crashmod_ko"] if loc.module else lab["vmlinux"]
        cands = _symtab(path).get(loc.symbol, [])
        if len(cands) > 1 and loc.size is not None:
            cands = [c for c in cands if c[1] == loc.size]
        if len(cands) != 1:  # a static name defined twice with the same size: the log cannot say which
            out.append((str(loc), None))
            continue
        value, _, sec = cands[0]
        addr = value + loc.offset - (0 if exact else 1)
        out.append((str(loc), _addr2line(path, sec, addr)))
    return out


SCENARIOS = [
    "null-member",
    "null-member-timer",
    "null-member-work",
    "netfilter-udp",
    "uaf-poison",
    "list-corruption",
    "oob-small-object",
    "hung-task",
    "soft-lockup",
    "bug-on",
    "warn",
    "panic",
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_arm64_frames_agree_with_addr2line(a64, name):
    s = _scenario(a64, name)
    cr = _analyze(s["console_log"], **_opts(a64))
    assert cr.crash.arch == "arm64"
    fr = _find(cr, "src.frames")
    assert fr, f"no src.frames; skipped: {cr.skipped}"
    frames = fr[0].data["frames"]
    ref = _reference(a64, cr.crash)
    assert len(frames) == len(ref) and len(frames) >= 3
    checked = 0
    for f, (text, chain) in zip(frames, ref):
        assert f["frame"] == text
        if chain is None:
            continue
        ours = [(c["function"], c["file"], c["line"]) for c in f["locations"]]
        assert len(ours) == len(chain), (text, ours, chain)
        for (fn, file, line), (rfn, rfile, rline) in zip(ours, chain):
            assert fn == rfn and line == rline and _same_file(file, rfile), (text, ours, chain)
        checked += 1
    # a frame is left unchecked only when its symbol is a static name defined twice with the same size (the log
    # cannot say which); the timer scenario's interrupted frames differ per boot (`arch_local_irq_enable`, an
    # inline copied into many files, in one boot), so up to three may be such names
    assert checked >= len(frames) - 3, "too many frames without a unique symbol"
    # the module frames are there and resolved
    assert any(f["module"] == "crashmod" and f["locations"] for f in frames)


def test_arm64_null_member_names_dev_rx_count(a64):
    """`port->dev->rx_count`, checked against the instructions read by hand.

    `aarch64-linux-gnu-objdump -dl crashmod.ko` of this lab's build (the fault: `pc :
    crashmod_read_rx_count+0x4/0x10 [crashmod]`, `x0 : 0000000000000000`, FAR 0xa30):

        0000000000000040 <crashmod_read_rx_count>:
        crashmod_read_rx_count():
        .../crashmod/crashmod.c:91
          40:   f9407800        ldr     x0, [x0, #240]
        .../crashmod/crashmod.c:92
          44:   f9451800        ldr     x0, [x0, #2608]
          48:   d65f03c0        ret

    By hand: AAPCS64 passes `port` (struct crashmod_port *) in x0. +0x0 loads the 8 bytes at x0+240 =
    port+0xf0, which is `dev` (static_assert in crashmod.c), back into x0: x0 = port->dev. +0x4, the
    faulting pc (the oops' `Code: ... f9407800 (f9451800)` marks that word), loads 8 bytes at
    x0+2608 = x0+0xa30: with port->dev NULL that is the read of 0xa30 the oops reports. 0xa30 in
    struct crashmod_dev is `rx_count`. So the base register is x0 = NULL holding `port->dev` (a
    temporary: after +0x0 no DWARF variable lives in x0, `port` was there only before), displacement
    0xa30, expression `port->dev->rx_count`. The line table gives the faulting word line 85 (the
    closing brace of `return port->dev->rx_count;` on line 84: GCC's arm64 line table moves the
    second load to the `}` row), and addr2line agrees; the x86 build has it on line 84.
    The test re-reads objdump's output so that a rebuild with other code fails here, not silently.
    """
    s = _scenario(a64, "null-member")
    dump = subprocess.run(
        [OBJDUMP, "-d", "--no-show-raw-insn", a64["crashmod_ko"]], capture_output=True, text=True, check=True
    ).stdout
    body = dump.split("<crashmod_read_rx_count>:", 1)[1].split("\n\n", 1)[0]
    insns = [" ".join(ln.split("\t", 1)[1].split()) for ln in body.strip().splitlines() if "\t" in ln]
    assert insns[:3] == ["ldr x0, [x0, #240]", "ldr x0, [x0, #2608]", "ret"], insns

    cr = _analyze(s["console_log"], **_opts(a64))
    assert cr.crash.ip.symbol == "crashmod_read_rx_count" and cr.crash.ip.offset == 4
    assert cr.crash.registers["x0"] == 0
    [acc] = _find(cr, "insn.bad-access")
    assert acc.data["base"] == "x0" and acc.data["disp"] == 0xA30 and acc.data["match"] is True
    [m] = _find(cr, "src.fault-member")
    d = m.data
    assert d["expression"] == "port->dev->rx_count", d
    assert d["offset"] == 0xA30 and d["member"] == "rx_count" and d["struct"] == "struct crashmod_dev"
    assert d["base_type"] == "struct crashmod_dev *" and d["base_value"] == 0 and d["base_register"] == "x0"
    assert [c["expression"] for c in d["chain"]] == ["port", "port->dev"]
    assert d["chain"][0]["register"] == "x0" and d["chain"][1]["offset"] == 0xF0
    assert d["chain"][1]["insn"] == "ldr x0, [x0, #0xf0]"
    assert d["line"].endswith("crashmod.c:92")
    ko = a64["crashmod_ko"]
    [(_, a2l_file, a2l_line)] = _addr2line(ko, ".text", _symtab(ko)["crashmod_read_rx_count"][0][0] + 4)
    assert d["line"] == f"{a2l_file}:{a2l_line}"
    assert m.confidence in ("certain", "high")


def test_arm64_disassembly_marks_the_fault(a64):
    s = _scenario(a64, "null-member")
    cr = _analyze(s["console_log"], src_dirs=[str(Path(a64["vmlinux"]).parent)], **_opts(a64))
    [d] = _find(cr, "src.disassembly")
    assert d.data["syntax"] == "arm64" and d.data["fault_insn"] == "ldr x0, [x0, #0xa30]"
    marked = [x for x in d.listing if x.startswith("*")]
    assert len(marked) == 1 and "ldr x0, [x0, #0xa30]" in marked[0]
    assert any("crashmod.c: 91" in x for x in d.listing)
    # the same instructions objdump prints (objdump: decimal immediates, capstone: hex)
    dump = subprocess.run(
        [OBJDUMP, "-d", "--no-show-raw-insn", a64["crashmod_ko"]], capture_output=True, text=True, check=True
    ).stdout
    body = dump.split("<crashmod_read_rx_count>:", 1)[1].split("\n\n", 1)[0]
    ref = [" ".join(ln.split("\t", 1)[1].split()) for ln in body.strip().splitlines() if "\t" in ln]
    ours = [" ".join(x.split(":\t", 1)[1].split("<--")[0].split()) for x in d.listing if ":\t" in x]
    dec = [re.sub(r"#0x([0-9a-f]+)", lambda mm: f"#{int(mm.group(1), 16)}", o) for o in ours]
    assert dec == ref[: len(dec)], (dec, ref)


@pytest.mark.parametrize(
    "name, expr, off, origin",
    [
        ("netfilter-udp", "port->dev->rx_bytes", 0xA38, None),  # ldr x2, [x0, #0xf0]; ldr x0, [x2, #0xa38]
        ("null-member-timer", "port->dev->rx_count", 0xA30, None),
        ("null-member-work", "port->dev->rx_count", 0xA30, None),
        ("uaf-poison", "obj->ops->handle", 0x0, None),  # ldr x0, [x0, #0x18]; ldr x1, [x0]
        ("oob-small-object", "cb->count", 0x8, "sk->reuse_cb"),  # cb = sk->reuse_cb (0x230), then cb->count
    ],
)
def test_arm64_member_other_scenarios(a64, name, expr, off, origin):
    cr = _analyze(_scenario(a64, name)["console_log"], **_opts(a64))
    [m] = _find(cr, "src.fault-member")
    assert m.data["expression"] == expr and m.data["offset"] == off and m.data["origin"] == origin, m.data
    if origin:
        assert any(c.get("offset") == 0x230 for c in m.data["chain"])


def test_arm64_leaf_caller_from_lr_and_noreturn_return_address(a64):
    """Two arm64 unwinder facts the frames must get right (both checked against addr2line above; here by name).

    null-member: crashmod_read_rx_count is a leaf (no frame record), so the trace goes from the pc to
    crashmod_write; its caller is only in `lr : crashmod_trigger+0x54/0x2e8` (this build), where
    crashmod_null_member is inlined. panic: the entry after `panic+0x160/0x314` is the return address of the
    `bl panic` that ends the noreturn crashmod_panic, i.e. the next function's first byte
    (`crashmod_trigger+0x0/0x2e8` in this build); offset-1 is crashmod_panic's `panic(...)` line.
    """
    cr = _analyze(_scenario(a64, "null-member")["console_log"], **_opts(a64))
    frames = _find(cr, "src.frames")[0].data["frames"]
    assert [f.get("register") for f in frames[:4]] == [None, None, "lr", None]
    lr = frames[2]
    assert lr["symbol"] == "crashmod_trigger" and not lr["exact"] and lr["lookup"] == lr["address"] - 1
    assert [c["function"] for c in lr["locations"]] == ["crashmod_null_member", "crashmod_trigger"]
    assert frames[3]["symbol"] == "crashmod_write"

    cr = _analyze(_scenario(a64, "panic")["console_log"], **_opts(a64))
    frames = _find(cr, "src.frames")[0].data["frames"]
    k = [f["symbol"] for f in frames].index("panic")
    f = frames[k + 1]
    src = (Path(a64["crashmod_ko"]).parent / "crashmod" / "crashmod.c").read_text().splitlines()  # as built
    line = next(n for n, t in enumerate(src, 1) if 'panic("crashmod: explicit panic requested")' in t)
    assert f["locations"][0]["function"] == "crashmod_panic" and f["locations"][0]["line"] == line, f
    assert f["lookup"] == f["address"] - 1


def test_arm64_member_resolver_on_vmlinux_code(a64):
    """The arm64 resolver on vmlinux code: in vfs_write the `file` argument arrives in x0 (AAPCS64) and is
    copied to a callee-saved register (`mov x19, x0` in this build); the first `ldr` through a register that
    still holds it reads a member of struct file (`ldr w4, [x19, #68]`: f_mode). The resolver must name it
    `file-><member at disp>` from the DWARF (variable location + type), like the source does."""
    from ktriage.debuginfo import find_debuginfo
    from ktriage.debuginfo.member import A64, Resolver, disassemble, member_path, written_regs
    from ktriage.pipeline import Options

    cr = _analyze(_scenario(a64, "null-member")["console_log"], analyze=False)
    di = find_debuginfo(cr.crash, Options(**_opts(a64)))
    sym = di.function("vfs_write", None)
    insns = disassemble(di.read_code(sym.address, sym.size), sym.address, arch="arm64")
    res = Resolver(di, dict(cr.crash.registers), insns, 0, "arm64")
    assert "file" in [n for n, _ in res.vars_in(sym.address, "x0")]
    holders = {"x0"}
    for k, i in enumerate(insns[:60]):
        if i.group(1) or i.group(2) or i.group(3):  # jump/call/ret: straight-line code only
            break
        ops = i.operands
        if (
            i.mnemonic in ("ldr", "ldur")
            and len(ops) == 2
            and ops[1].type == 3
            and not ops[1].mem.index
            and A64.get(i.reg_name(ops[1].mem.base)) in holders
            and ops[0].type == 1
        ):
            got = res.resolve(A64[i.reg_name(ops[0].reg)], k + 1)
            want = member_path(di.prog.type("struct file"), ops[1].mem.disp)[0][0]
            assert got and got[0].expression == f"file->{want}", (i.op_str, [g.expression for g in got])
            return
        if i.mnemonic == "mov" and len(ops) == 2 and ops[1].type == 1 and A64.get(i.reg_name(ops[1].reg)) in holders:
            holders.add(A64[i.reg_name(ops[0].reg)])
            continue
        holders -= written_regs(i, "arm64")
    pytest.skip("no load through the file argument early in vfs_write in this build")
