"""Issue 6 on the lab: a console log + the lab's vmlinux/crashmod.ko (no vmcore).

Reference: binutils `addr2line -i -f` on the same files at the same debug-file addresses (section
offset for the .ko), and the kernel's `scripts/faddr2line` for the faulting `func+off`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.lab.conftest import analyze_log as _analyze
from tests.lab.conftest import debug_opts as _opts
from tests.lab.conftest import findings_of as _find
from tests.lab.conftest import lab_cache, scenario

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

pytestmark = pytest.mark.skipif(shutil.which("addr2line") is None, reason="binutils addr2line (the reference) missing")


def _addr2line(path: str, section: str | None, addrs: list[int]) -> list[list[tuple[str, str, int]]]:
    cmd = ["addr2line", "-i", "-f", "-e", path] + (["-j", section] if section else []) + [f"{a:#x}" for a in addrs]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    # addr2line -i prints 2 lines per location and an unknown number of locations per address:
    # ask one address at a time when several are given (cheap: < 100 addresses per test)
    assert len(addrs) == 1
    chain = []
    for k in range(0, len(out), 2):
        fn, loc = out[k], out[k + 1]
        m = re.match(r"(.*):(\d+|\?)", loc.split(" (discriminator")[0])
        chain.append((fn, m.group(1), int(m.group(2)) if m.group(2) != "?" else 0))
    return [chain]


def _same_file(drgn_path: str, a2l_path: str) -> bool:
    d, a = os.path.normpath(drgn_path), os.path.normpath(a2l_path)
    return a.endswith(d.lstrip("./")) or d.endswith(a.lstrip("./"))


@pytest.mark.parametrize("name", SCENARIOS)
def test_frames_agree_with_addr2line(lab, name):
    s = scenario(lab, name)
    cr = _analyze(s["console_log"], **_opts(lab))
    fr = _find(cr, "src.frames")
    assert fr, f"no src.frames; skipped: {cr.skipped}"
    frames = fr[0].data["frames"]
    # a frame without lines is allowed only for a `?` stack-scan entry at func+size (a function pointer, not
    # a return address: the byte before it is padding with no line), and addr2line must agree there is none
    assert frames and all(f["locations"] or (not f["reliable"] and f["offset"] == f["size"]) for f in frames), [
        f for f in frames if not f["locations"]
    ]
    for f in frames:
        [ref] = _addr2line(f["file"], f["section"], [f["addr2line_address"]])
        if not f["locations"]:
            assert all(r[2] == 0 for r in ref), (f["frame"], ref)
            continue
        ours = [(c["function"], c["file"], c["line"]) for c in f["locations"]]
        assert len(ours) == len(ref), (f["frame"], ours, ref)
        for (fn, file, line), (rfn, rfile, rline) in zip(ours, ref):
            assert fn == rfn and line == rline and _same_file(file, rfile), (f["frame"], ours, ref)
    # log-only findings are still there
    assert any(f.code.startswith(("insn.", "regs.", "value.")) for f in cr.findings) or name in ("panic", "hung-task")


@pytest.mark.parametrize("name", ["null-member", "uaf-poison", "list-corruption", "netfilter-udp"])
def test_faulting_frame_agrees_with_faddr2line(lab, name):
    s = scenario(lab, name)
    tree = Path(lab["vmlinux"]).parent
    tool = tree / "scripts" / "faddr2line"
    if not tool.exists():
        pytest.skip("scripts/faddr2line not in the lab kernel tree")
    cr = _analyze(s["console_log"], **_opts(lab))
    ip = cr.crash.ip
    f0 = _find(cr, "src.frames")[0].data["frames"][0]
    obj = lab["crashmod_ko"] if ip.module else lab["vmlinux"]
    out = subprocess.run(
        [str(tool), obj, f"{ip.symbol}+{ip.offset:#x}/{ip.size:#x}"], capture_output=True, text=True, cwd=tree
    ).stdout
    refs = re.findall(r"(?:^|inlined by\) )(\S+) at (\S+):(\d+)", out, re.M) or re.findall(
        r"^(\S+) at (\S+):(\d+)", out, re.M
    )
    got = [(c["function"], c["line"]) for c in f0["locations"]]
    want = [(fn, int(line)) for fn, _, line in refs]
    assert got == want[: len(got)] and len(got) == len(want), (out, got)


def test_null_member_names_dev_rx_count(lab):
    s = scenario(lab, "null-member")
    cr = _analyze(s["console_log"], **_opts(lab))
    [m] = _find(cr, "src.fault-member")
    d = m.data
    assert d["expression"].endswith("dev->rx_count"), d
    assert d["expression"] == "port->dev->rx_count"
    assert d["offset"] == 0xA30 and d["member"] == "rx_count" and d["struct"] == "struct crashmod_dev"
    assert d["base_type"] == "struct crashmod_dev *" and d["base_value"] == 0
    assert [c["expression"] for c in d["chain"]] == ["port", "port->dev"]
    assert d["chain"][1]["offset"] == 0xF0
    # the truth, by hand from the source: the line and the static_asserts
    src = Path(lab["crashmod_ko"]).parent / "crashmod" / "crashmod.c"
    if not src.exists():
        src = Path(__file__).resolve().parents[2] / "lab" / "crashmod" / "crashmod.c"
    text = src.read_text().splitlines()
    file, line = d["line"].rsplit(":", 1)
    assert file.endswith("crashmod.c") and "port->dev->rx_count" in text[int(line) - 1]
    joined = "\n".join(text)
    assert "offsetof(struct crashmod_dev, rx_count) == 0xa30" in joined
    assert "offsetof(struct crashmod_port, dev) == 0xf0" in joined
    assert m.confidence in ("certain", "high")


@pytest.mark.parametrize(
    "name, expr, origin, off",
    [
        ("oob-small-object", "cb->count", "sk->reuse_cb", 0x8),  # cb = sk->reuse_cb: 0x230, past a 64-byte request
        ("uaf-poison", "obj->ops->handle", None, 0x0),
        ("netfilter-udp", "port->dev->rx_bytes", None, 0xA38),
    ],
)
def test_member_other_scenarios(lab, name, expr, origin, off):
    cr = _analyze(scenario(lab, name)["console_log"], **_opts(lab))
    [m] = _find(cr, "src.fault-member")
    assert m.data["expression"] == expr and m.data["offset"] == off and m.data["origin"] == origin, m.data
    if origin:
        assert any(c.get("offset") == 0x230 for c in m.data["chain"])


def test_disassembly_marks_the_fault(lab):
    s = scenario(lab, "null-member")
    src = Path(lab["vmlinux"]).parent
    cr = _analyze(s["console_log"], src_dirs=[str(src)], **_opts(lab))
    [d] = _find(cr, "src.disassembly")
    marked = [x for x in d.listing if x.startswith("*")]
    assert len(marked) == 1 and "0xa30(%rax)" in marked[0]
    assert any("crashmod.c: 91" in x for x in d.listing)
    assert any("rx_count" in x and x.lstrip().startswith("|") for x in d.listing)  # --src text
    # the same bytes objdump shows for the function
    ko = lab["crashmod_ko"]
    dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", ko], capture_output=True, text=True).stdout
    body = dump.split("<crashmod_read_rx_count>:", 1)[1].split("\n\n", 1)[0]
    ours = [
        x.split(":\t", 1)[1].replace("movq", "mov").replace(", ", ",").replace("retq", "ret").split("<--")[0].strip()
        for x in d.listing
        if ":\t" in x
    ]
    ref = [ln.split("\t", 1)[1].split("#")[0].strip().replace("    ", " ") for ln in body.strip().splitlines()]
    ref = [" ".join(r.split()) for r in ref]
    assert [" ".join(o.split()) for o in ours] == ref[: len(ours)], (ours, ref)


def _log_only(cr) -> list[tuple[str, str]]:
    return sorted((f.code, f.summary) for f in cr.findings if not f.code.startswith(("debuginfo.", "src.")))


def test_wrong_file_refused_and_log_findings_intact(lab, tmp_path):
    s = scenario(lab, "null-member")
    base = _analyze(s["console_log"])
    # 1. a module given as the vmlinux, and an empty --debuginfo dir
    cr = _analyze(s["console_log"], vmlinux=lab["crashmod_ko"], debuginfo_dirs=[str(tmp_path)])
    assert not _find(cr, "src.frames")
    [sk] = [x for x in cr.skipped if x.analyzer == "debuginfo"]
    assert "refused" in sk.reason and "not a vmlinux" in sk.reason and "looked in" in sk.reason, sk.reason
    assert str(tmp_path) in sk.reason
    assert _log_only(cr) == _log_only(base)
    # 2. a stripped copy of the right files
    if shutil.which("objcopy"):
        v = tmp_path / "vmlinux"
        subprocess.run(["objcopy", "--strip-debug", lab["vmlinux"], str(v)], check=True)
        k = tmp_path / "crashmod.ko"
        subprocess.run(["objcopy", "--strip-debug", lab["crashmod_ko"], str(k)], check=True)
        cr = _analyze(s["console_log"], debuginfo_dirs=[str(tmp_path)])
        [sk] = [x for x in cr.skipped if x.analyzer == "debuginfo"]
        assert "stripped" in sk.reason, sk.reason
        assert _log_only(cr) == _log_only(base)


def test_other_release_refused(lab):
    """The lab vmlinux against a crash of another kernel release (a real log from the seeds/corpora)."""
    repo = Path(__file__).resolve().parents[2]
    logs = [
        p
        for p in sorted((repo / "tests" / "fixtures").rglob("*"))
        if p.is_file() and p.suffix in (".log", ".txt") and "lab" not in p.parts
    ]
    from ktriage.pipeline import Options, analyze_paths

    for p in logs:
        rep = analyze_paths([str(p)], Options(analyze=False))
        k = next(
            (
                n
                for n, c in enumerate(rep.crashes)
                if c.crash.kernel.release and c.crash.kernel.release != "6.1.192" and c.crash.arch == "x86_64"
            ),
            None,
        )
        if k is None:
            continue
        base = analyze_paths([str(p)], Options()).crashes[k]
        cr = analyze_paths([str(p)], Options(vmlinux=lab["vmlinux"])).crashes[k]
        [sk] = [x for x in cr.skipped if x.analyzer == "debuginfo"]
        assert f"vmlinux is release 6.1.192, the crash is {cr.crash.kernel.release}" in sk.reason, sk.reason
        assert not _find(cr, "src.frames")
        assert _log_only(cr) == _log_only(base)
        return
    pytest.skip("no fixture log of another release")


def test_other_build_same_release_refused(lab):
    """Another lab kernel build (same 6.1.192 release, different banner/build ID), when the cache has one."""
    others = [
        p
        for p in (lab_cache() / "kernel").glob("*/linux/vmlinux")
        if os.path.realpath(p) != os.path.realpath(lab["vmlinux"])
    ]
    others = [p for p in others if (p.parent.parent / "BUILT").exists()]
    if not others:
        pytest.skip("the lab cache holds one kernel build only")
    s = scenario(lab, "null-member")
    cr = _analyze(s["console_log"], vmlinux=str(others[0]))
    [sk] = [x for x in cr.skipped if x.analyzer == "debuginfo"]
    assert "another build" in sk.reason, sk.reason


def test_module_missing_vmlinux_frames_still_resolved(lab, tmp_path):
    s = scenario(lab, "null-member")
    cr = _analyze(s["console_log"], vmlinux=lab["vmlinux"], debuginfo_dirs=[str(tmp_path)])
    [files] = _find(cr, "debuginfo.files")
    assert "crashmod.ko" in files.data["missing"]
    frames = _find(cr, "src.frames")[0].data["frames"]
    assert all(f["locations"] for f in frames if not f["module"])
    assert all(not f["locations"] and "no debug info for crashmod" in f["note"] for f in frames if f["module"])


def test_distro_layout(lab, tmp_path, monkeypatch):
    """/usr/lib/debug/lib/modules/<release>/vmlinux and .../kernel/**/crashmod.ko.debug under a fake root."""
    rel = "6.1.192"
    d = tmp_path / "usr/lib/debug/lib/modules" / rel
    (d / "kernel/drivers/misc").mkdir(parents=True)
    os.symlink(lab["vmlinux"], d / "vmlinux")
    shutil.copy(lab["crashmod_ko"], d / "kernel/drivers/misc/crashmod.ko.debug")
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path))
    s = scenario(lab, "null-member")
    cr = _analyze(s["console_log"])
    [files] = _find(cr, "debuginfo.files")
    assert files.data["vmlinux"].endswith(f"lib/modules/{rel}/vmlinux")
    assert files.data["modules"]["crashmod"].endswith("crashmod.ko.debug")
    assert _find(cr, "src.fault-member")[0].data["member"] == "rx_count"


def test_member_resolver_on_vmlinux_code(lab):
    """The same machinery on vmlinux code (no lab fault is in vmlinux): in vfs_write, the first load through
    the `file` argument (RDI at entry) reads a member of struct file; the resolver must name it as
    `file-><member at that offset>` from the DWARF, like the source does."""
    from ktriage.debuginfo import find_debuginfo
    from ktriage.debuginfo.member import CS2PT, Resolver, disassemble, member_path
    from ktriage.pipeline import Options

    cr = _analyze(scenario(lab, "null-member")["console_log"], analyze=False)
    di = find_debuginfo(cr.crash, Options(**_opts(lab)))
    sym = di.function("vfs_write", None)
    insns = disassemble(di.read_code(sym.address, sym.size), sym.address)
    res = Resolver(di, dict(cr.crash.registers), insns, 0)
    assert [n for n, _ in res.vars_in(sym.address, "di")] == ["file"]
    for k, i in enumerate(insns[:40]):
        ops = i.operands
        if (
            i.mnemonic.startswith("mov")
            and len(ops) == 2
            and ops[0].type == 3
            and ops[1].type == 1
            and ops[0].mem.base
            and i.reg_name(ops[0].mem.base) == "rdi"
            and not ops[0].mem.index
        ):
            if any(CS2PT.get(i2.reg_name(r)) == "di" for i2 in insns[:k] for r in i2.regs_access()[1]):
                break  # RDI rewritten before: not the argument any more
            dst = CS2PT[i.reg_name(ops[1].reg)]
            got = res.resolve(dst, k + 1)
            want = member_path(di.prog.type("struct file"), ops[0].mem.disp)[0][0]
            assert got and got[0].expression == f"file->{want}", (i.op_str, [g.expression for g in got])
            return
    pytest.skip("no load through the file argument early in vfs_write in this build")


def test_log_of_another_build_refused(lab, tmp_path):
    """A real null-member log of another build of 6.1.192 (the committed fixture, or an older git version
    of it, when its boot banner differs from the lab vmlinux's): same release, same #1, refused."""
    from ktriage.debuginfo.elf import ElfFile

    repo = Path(__file__).resolve().parents[2]
    rel = "tests/fixtures/lab/null-member.console.log"
    banner = ElfFile.open(lab["vmlinux"]).banner()
    cands = [repo / rel]
    revs = subprocess.run(
        ["git", "log", "--format=%H", "--", rel], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    for n, rev in enumerate(revs[:5]):
        text = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=repo, capture_output=True, text=True).stdout
        if text:
            p = tmp_path / f"old{n}.console.log"
            p.write_text(text)
            cands.append(p)
    for p in cands:
        line = next((ln for ln in p.read_text(errors="replace").splitlines() if "Linux version" in ln), "")
        if not line or banner in line:
            continue
        base = _analyze(str(p))
        cr = _analyze(str(p), vmlinux=lab["vmlinux"])
        [sk] = [x for x in cr.skipped if x.analyzer == "debuginfo"]
        assert "same release 6.1.192 but another build" in sk.reason, sk.reason
        assert not _find(cr, "src.frames") and _log_only(cr) == _log_only(base)
        # with the module dir too: the vmlinux is still refused (one note), only module frames are symbolized
        # (crashmod.ko is checked by vermagic, function sizes and Code: bytes; it has no banner to compare)
        cr = _analyze(str(p), **_opts(lab))
        refused = _find(cr, "debuginfo.refused")
        if not refused:
            # the log's crashmod is of another build too (crashmod.c changed since): nothing is symbolized, and
            # the one-line reason names both refusals, the module's by a function size the oops contradicts
            [sk] = [x for x in cr.skipped if x.analyzer == "debuginfo"]
            assert "same release 6.1.192 but another build" in sk.reason
            assert "crashmod.ko: refused: another build of crashmod: " in sk.reason
            assert not _find(cr, "src.frames") and _log_only(cr) == _log_only(base)
            return
        [ref] = refused
        assert "same release 6.1.192 but another build" in ref.summary
        frames = _find(cr, "src.frames")[0].data["frames"]
        assert all(not f["locations"] for f in frames if not f["module"])
        assert _log_only(cr) == _log_only(base)
        return
    pytest.skip("no null-member log of another build at hand")
