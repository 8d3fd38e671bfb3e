"""Debug-info search and refusal on real ELF files built here with gcc (no lab needed).

A tiny "vmlinux" (ET_EXEC with a `linux_banner` and DWARF) and a tiny "module" (ET_REL with a
.modinfo vermagic) are compiled per session; stripped copies come from objcopy.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ktriage.analyzers import AnalysisContext, run_analyzers
from ktriage.debuginfo import find_debuginfo, search
from ktriage.debuginfo.elf import ElfFile
from ktriage.model import Crash, Frame, Kernel, Location, SourceSpan

pytestmark = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("objcopy")), reason="needs gcc and objcopy")

REL = "9.9.9-kt"
BANNER = f"Linux version {REL} (t@h) (gcc) #7 SMP Thu Jan 1 00:00:00 UTC 2026"

KERNEL_C = (
    r"""
const char linux_banner[] = "%s\n";
struct inner { long pad[3]; long hits; };
struct dev { char name[16]; struct inner st; unsigned long rx_count; };
struct port { long pad[30]; struct dev *dev; };
__attribute__((noinline)) unsigned long read_rx(struct port *port) { return port->dev->rx_count; }
__attribute__((noinline)) unsigned long caller(struct port *p) { return read_rx(p) + 1; }
void _start(void) { caller((struct port *)0); for (;;) ; }
"""
    % BANNER
)

MOD_C = (
    r"""
__attribute__((section(".modinfo"), used)) static const char mi[] = "vermagic=%s SMP mod_unload \0name=fakemod";
__attribute__((noinline)) int fakemod_fn(int *p) { return p[3]; }
"""
    % REL
)


@pytest.fixture(scope="session")
def elfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("elfs")
    (d / "k.c").write_text(KERNEL_C)
    (d / "m.c").write_text(MOD_C)
    subprocess.run(
        ["gcc", "-g", "-O2", "-fno-pie", "-no-pie", "-nostdlib", "-static", "-o", str(d / "vmlinux"), str(d / "k.c")],
        check=True,
    )
    subprocess.run(["gcc", "-g", "-O2", "-c", "-o", str(d / "fakemod.ko"), str(d / "m.c")], check=True)
    subprocess.run(["objcopy", "--strip-debug", str(d / "vmlinux"), str(d / "vmlinux.stripped")], check=True)
    subprocess.run(["objcopy", "--strip-debug", str(d / "fakemod.ko"), str(d / "fakemod.stripped.ko")], check=True)
    return d


def _size(path, name) -> int:
    e = ElfFile.open(str(path))
    try:
        return e.symbols({name})[name][1]
    finally:
        e.close()


def crash(elfs, release=REL, build="#7 ", module=False, size=None, log=None) -> Crash:
    ip = Location("read_rx", 4, size or _size(elfs / "vmlinux", "read_rx"), None)
    frames = (Frame("caller", 5, _size(elfs / "vmlinux", "caller")),)
    if module:
        frames += (Frame("fakemod_fn", 3, _size(elfs / "fakemod.ko", "fakemod_fn"), "fakemod"),)
    src = SourceSpan(str(log) if log else "oops.log", 2, 20)
    return Crash(
        kind="null-deref",
        title="t",
        source=src,
        ip=ip,
        frames=frames,
        arch="x86_64",
        kernel=Kernel(release=release, build=build),
        registers={"RAX": 0, "RDI": 0},
    )


def test_elf_facts(elfs):
    e = ElfFile.open(str(elfs / "vmlinux"))
    assert e.banner() == BANNER and e.has_dwarf and e.machine == "x86_64"
    m = ElfFile.open(str(elfs / "fakemod.ko"))
    assert m.modinfo()["vermagic"].split()[0] == REL and m.module_name() == "fakemod" and m.etype == 1
    assert not ElfFile.open(str(elfs / "vmlinux.stripped")).has_dwarf


def test_explicit_vmlinux_accepted(elfs):
    s = search(crash(elfs), str(elfs / "vmlinux"))
    assert s.vmlinux == str(elfs / "vmlinux") and s.vmlinux_how == "--vmlinux"
    assert "banner release 9.9.9-kt" in s.verified[0] and "build #7" in s.verified[0]


@pytest.mark.parametrize(
    "kw, note",
    [
        ({"release": "9.9.8"}, "vmlinux is release 9.9.9-kt, the crash is 9.9.8"),
        ({"build": "#8 "}, "same release 9.9.9-kt but build #7, the crash is #8"),
        ({"size": 0x1000}, "another build of 9.9.9-kt: read_rx is"),
    ],
)
def test_mismatch_refused(elfs, kw, note):
    s = search(crash(elfs, **kw), str(elfs / "vmlinux"))
    assert s.vmlinux is None and len(s.refused) == 1 and note in s.refused[0], s.refused


def test_other_boot_banner_refused(elfs, tmp_path):
    log = tmp_path / "console.log"
    log.write_text(BANNER.replace("Thu Jan 1", "Fri Jan 2") + "\n" + "x\n" * 30)
    s = search(crash(elfs, log=log), str(elfs / "vmlinux"))
    assert s.vmlinux is None and "another build" in s.refused[0]
    log.write_text("[    0.000000] " + BANNER + "\n" + "x\n" * 30)
    assert search(crash(elfs, log=log), str(elfs / "vmlinux")).vmlinux
    assert "identical to the log's boot line" in search(crash(elfs, log=log), str(elfs / "vmlinux")).verified[0]


def test_stripped_and_wrong_kind_refused(elfs):
    s = search(crash(elfs), str(elfs / "vmlinux.stripped"))
    assert s.vmlinux is None and "stripped" in s.refused[0]
    s = search(crash(elfs), str(elfs / "fakemod.ko"))
    assert "not a vmlinux" in s.refused[0]
    s = search(crash(elfs), str(elfs / "k.c"))
    assert "not an ELF file" in s.refused[0]


def test_debuginfo_dir_and_module_layouts(elfs, tmp_path, monkeypatch):
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))
    d = tmp_path / "dbg"
    (d / "extra").mkdir(parents=True)
    shutil.copy(elfs / "vmlinux", d / f"vmlinux-{REL}")
    shutil.copy(elfs / "fakemod.ko", d / "extra" / "fakemod.ko")
    s = search(crash(elfs, module=True), None, [str(d)])
    assert s.vmlinux == str(d / f"vmlinux-{REL}") and s.modules["fakemod"] == str(d / "extra" / "fakemod.ko")
    assert not s.refused and not s.missing_modules()


def test_distro_layout(elfs, tmp_path, monkeypatch):
    root = tmp_path / "root"
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(root))
    boot = root / "usr/lib/debug/boot"
    mods = root / "usr/lib/debug/lib/modules" / REL / "kernel/drivers/x"
    boot.mkdir(parents=True)
    mods.mkdir(parents=True)
    shutil.copy(elfs / "vmlinux", boot / f"vmlinux-{REL}")
    shutil.copy(elfs / "fakemod.ko", mods / "fakemod.ko.debug")
    s = search(crash(elfs, module=True))
    assert s.vmlinux == str(boot / f"vmlinux-{REL}") and s.vmlinux_how == "distro layout"
    assert s.modules["fakemod"] == str(mods / "fakemod.ko.debug")


def test_module_refusals(elfs, tmp_path, monkeypatch):
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))
    d = tmp_path / "dbg"
    d.mkdir()
    shutil.copy(elfs / "fakemod.stripped.ko", d / "fakemod.ko")
    s = search(crash(elfs, module=True), str(elfs / "vmlinux"), [str(d)])
    assert "stripped" in s.refused[0] and str(d) in s.refused[0]
    # ...and the search went on to the vmlinux's own directory (a build tree), where the good one is
    assert s.modules_how["fakemod"] == "the vmlinux's build tree"
    c = crash(elfs, module=True)
    c2 = c.replace(kernel=Kernel(release=REL, build="#7"))
    shutil.copy(elfs / "fakemod.ko", d / "fakemod.ko")
    assert search(c2, str(elfs / "vmlinux"), [str(d)]).modules
    s = search(c.replace(kernel=Kernel(release="9.9.8")), None, [str(d)])
    assert any("built for 9.9.9-kt (vermagic), the crash is 9.9.8" in r for r in s.refused), s.refused


def test_nothing_found_says_where_it_looked(elfs, tmp_path, monkeypatch):
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))
    c = crash(elfs)
    ctx = AnalysisContext(c, debuginfo=find_debuginfo(c, None))
    skipped = run_analyzers(ctx)
    [sk] = [s for s in skipped if s.analyzer == "debuginfo"]
    assert f"needs the vmlinux of {REL}" in sk.reason and "looked in" in sk.reason
    assert f"/usr/lib/debug/lib/modules/{REL}/vmlinux" in sk.reason
    assert any(f.code == "regs.classified" for f in ctx.findings)  # log-only findings still there


def test_symbolize_and_member_on_fake_kernel(elfs, tmp_path, monkeypatch):
    """drgn on the gcc-built 'vmlinux': file:line like addr2line, and the member by offset."""
    monkeypatch.setenv("KTRIAGE_DEBUGINFO_ROOT", str(tmp_path / "root"))

    class O:
        vmlinux = str(elfs / "vmlinux")
        debuginfo_dirs: list = []
        src_dirs: list = []

    c = crash(elfs)
    di = find_debuginfo(c, O())
    assert di.ok, di.error
    a = di.address("caller", 0, None)
    assert a is not None
    got = di.locate(a)
    ref = subprocess.run(
        ["addr2line", "-f", "-e", str(elfs / "vmlinux"), f"{a:#x}"], capture_output=True, text=True
    ).stdout.split()
    assert got and got[0].function == ref[0] and ref[1].endswith(f"k.c:{got[0].line}")
    from ktriage.debuginfo.member import member_path

    dev = di.prog.type("struct dev")
    assert [p for p, _, _ in member_path(dev, 0x10 + 0x18)] == ["st.hits"]
    assert [p for p, _, _ in member_path(dev, 0x30)] == ["rx_count"]
    assert [p for p, _, _ in member_path(di.prog.type("struct port"), 0x18)] == ["pad[3]"]


def test_code_bytes_checked(elfs):
    """The oops' Code: window must be (mostly) the file's bytes at func+off."""
    from ktriage.model import CodeBytes

    e = ElfFile.open(str(elfs / "vmlinux"))
    value, size, shndx = e.symbols({"read_rx"})["read_rx"]
    sec = e.sections[shndx]
    body = e.bytes_at(sec, value - sec.addr, size)
    good = crash(elfs).replace(code=CodeBytes(data=body, trap_offset=4, arch="x86_64"))
    s = search(good, str(elfs / "vmlinux"))
    assert s.vmlinux and f"Code: bytes {len(body)}/{len(body)} identical" in s.verified[0]
    bad = good.replace(code=CodeBytes(data=bytes(b ^ 0x5A for b in body), trap_offset=4, arch="x86_64"))
    s = search(bad, str(elfs / "vmlinux"))
    assert s.vmlinux is None and "Code: bytes differ" in s.refused[0]
