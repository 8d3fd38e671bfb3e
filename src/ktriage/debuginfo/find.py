"""Find the debug info of the kernel that crashed, check it is that kernel, and say where we looked.

Search order (first verified file wins; every place tried is recorded in `Search.looked`):

vmlinux
  1. `--vmlinux FILE`
  2. each `--debuginfo DIR`: DIR/vmlinux, DIR/vmlinux-<release>, DIR/boot/vmlinux-<release>,
     DIR/lib/modules/<release>/vmlinux, DIR/usr/lib/debug/... (DIR as a root), DIR/.build-id/xx/rest.debug
     (only when the log prints a build ID)
  3. distro layouts under the system root: /usr/lib/debug/lib/modules/<release>/vmlinux,
     /usr/lib/debug/boot/vmlinux-<release>, /boot/vmlinux-<release>, /lib/modules/<release>/build/vmlinux
     (a kernel build tree), /usr/lib/debug/.build-id/ (with a build ID)
  4. debuginfod (`debuginfod.py`): elfutils' cache, then DEBUGINFOD_URLS, by build ID (a vmcore's
     VMCOREINFO, or a log of a CONFIG_STACKTRACE_BUILD_ID kernel); modules only when the log prints theirs
modules (every module named in the IP or a frame)
  DIR/<mod>.ko(.debug), DIR/*/<mod>.ko(.debug), a kernel/module build tree under DIR (bounded walk),
  /usr/lib/debug/lib/modules/<release>/kernel/**/<mod>.ko.debug, /lib/modules/<release>/**/<mod>.ko

A file is refused, with a one-line note, when it is not ELF, has no DWARF (stripped), is not the
right kind (a module given as vmlinux), or does not match the crash: `linux_banner` release (or
vermagic for a module) differs from the oops' release, the build number (#N) or the full banner read
from the same log differ, a build ID printed in the log differs, or a function the oops prints as
`func+off/size` has another size in the file (another build of the same release). Never symbolize
against the wrong kernel.

`KTRIAGE_DEBUGINFO_ROOT` (default `/`) is the system root for the distro layouts (tests use it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ktriage import linear
from ktriage.debuginfo.elf import ET_REL, ElfError, ElfFile
from ktriage.model import Crash

MAX_WALK = 200000  # directory entries visited per build-tree walk
_BUILD_ID_FRAME = linear.compile(
    r"\[(\S+) ([0-9a-f]{40})\]"
)  # linear: `\S+` from every `[`; CONFIG_STACKTRACE_BUILD_ID: func+0x1/0x2 [mod <id>]


@dataclass
class Search:
    """What the search found, refused and tried. Notes are one line each, for the report."""

    release: str | None = None
    vmlinux: str | None = None
    vmlinux_how: str = ""
    modules: dict[str, str] = field(default_factory=dict)  # name -> path
    modules_how: dict[str, str] = field(default_factory=dict)
    wanted_modules: list[str] = field(default_factory=list)
    looked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)  # how each accepted file was checked

    def missing_modules(self) -> list[str]:
        return [m for m in self.wanted_modules if m not in self.modules]

    def looked_summary(self, limit: int = 12) -> str:
        seen = list(dict.fromkeys(self.looked))
        more = f" (+{len(seen) - limit} more)" if len(seen) > limit else ""
        shown = seen[:limit] + [x for x in seen[limit:] if x.startswith("debuginfod")]  # always said
        return ", ".join(shown) + more if seen else "nowhere (no --vmlinux/--debuginfo and no distro layout)"


def _root() -> Path:
    return Path(os.environ.get("KTRIAGE_DEBUGINFO_ROOT") or "/")


def norm_mod(name: str) -> str:
    return name.replace("-", "_")


def log_build_ids(crash: Crash) -> dict[str, str]:
    """Build IDs printed in the trace (`[mod <40 hex>]`, CONFIG_STACKTRACE_BUILD_ID); vmlinux has none there."""
    out: dict[str, str] = {}
    for line in crash.lines:
        for m in _BUILD_ID_FRAME.finditer(line):
            out.setdefault(norm_mod(m.group(1)), m.group(2))
    return out


_BANNERS: dict[tuple, list[tuple[int, str]]] = {}


def _banners(path: str) -> list[tuple[int, str]]:
    """(line number, `Linux version ...` text) of every boot banner in a plain-text log, read once per file."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _BANNERS:
        found: list[tuple[int, str]] = []
        with open(path, "rb") as f:
            head = f.read(4)
            if not (head[:2] in (b"\x1f\x8b", b"BZ") or head in (b"\xfd7zX", b"\x28\xb5\x2f\xfd")):
                f.seek(0)
                found = _find_banners(f)
        if len(_BANNERS) > 16:
            _BANNERS.clear()
        _BANNERS[key] = found
    return _BANNERS[key]


def _find_banners(f: BinaryIO) -> list[tuple[int, str]]:
    """Every line holding `Linux version `, found in big blocks with bytes.find (not line by line in Python:
    a 200 MB syslog has millions of lines and a few banners)."""
    found: list[tuple[int, str]] = []
    lineno, tail = 1, b""  # lineno: the number of the block's first line
    while True:
        data = f.read(4 << 20)
        block = tail + data
        last = block.rfind(b"\n") if data else len(block) - 1
        if last < 0:
            if not data:
                break
            tail = block
            continue
        body, tail = block[: last + 1], block[last + 1 :]
        pos, at = 0, 0  # `at`: where the count of newlines has reached (line number `lineno` begins there)
        while (i := body.find(b"Linux version ", pos)) >= 0:
            start = body.rfind(b"\n", 0, i) + 1
            lineno += body.count(b"\n", at, start)
            at = start
            end = body.find(b"\n", i)
            end = len(body) if end < 0 else end + 1
            found.append((lineno, body[i:end].decode("utf-8", "replace").strip()))
            pos = end
        lineno += body.count(b"\n", at)
        if not data:
            break
    return found


def log_banner(crash: Crash) -> str | None:
    """The `Linux version ...` boot line of the same log, before the crash (the oops prints only `#N`)."""
    path = crash.source.path if crash.source else None
    if crash.source and crash.source.format == "vmcore":
        return None  # the log is inside the dump (its lines are not the file's); the vmcore session checks the build
    if not path or path == "-" or not os.path.isfile(path) or os.path.getsize(path) > (256 << 20):
        return None
    try:
        before = [b for n, b in _banners(path) if n <= crash.source.first_line]
    except OSError:
        return None
    return before[-1] if before else None


def _wanted_modules(crash: Crash) -> list[str]:
    mods = []
    for loc in ((crash.ip,) if crash.ip else ()) + tuple(crash.frames):
        if loc.module:
            mods.append(norm_mod(loc.module))
    return list(dict.fromkeys(mods))


def _frame_sizes(crash: Crash, module: str | None) -> dict[str, int]:
    """Functions of `module` (None: vmlinux) the oops printed with a size: name -> size."""
    out: dict[str, int] = {}
    for loc in ((crash.ip,) if crash.ip else ()) + tuple(crash.frames):
        if loc.symbol and loc.size and (norm_mod(loc.module) if loc.module else None) == module:
            out.setdefault(loc.symbol, loc.size)
    return out


def check_sizes(elf: ElfFile, sizes: dict[str, int]) -> str | None:
    """None when every printed `func/size` fits the file's symbol (kallsyms size >= st_size, < st_size + 64)."""
    if not sizes:
        return None
    syms = elf.symbols(set(sizes))
    for name, size in sizes.items():
        hit = syms.get(name)
        if hit is None:
            if not name.startswith(("0x", "__pfx")) and "." not in name:
                return f"has no function {name} (printed in the oops)"
            continue
        st_size = hit[1]
        if st_size and not st_size <= size < st_size + 64:
            return f"{name} is {st_size:#x} bytes in the file but {size:#x} in the oops"
    return None


def _same_banner(elf_banner: str, log_banner: str) -> bool:
    """The log's boot line names this build: equal, or one a prefix of the other (a console cut the line,
    a journal/JSON export appended quoting) as long as the common part reaches past the build number."""
    a, b = " ".join(elf_banner.split()), " ".join(log_banner.split())
    n = min(len(a), len(b))
    hash_at = a.find(" #")
    return a[:n] == b[:n] and (n == len(a) or (hash_at > 0 and n > hash_at + 3))


def check_code(elf: ElfFile, crash: Crash, module: str | None) -> tuple[int, int] | None:
    """(matching bytes, compared bytes) of the oops' Code: window against the file at the IP, or None when
    the window cannot be compared (no Code:, IP in another object, no bytes in the file)."""
    ip, code = crash.ip, crash.code
    if ip is None or not ip.symbol or ip.offset is None or code is None or not code.data or code.trap_offset is None:
        return None
    if (norm_mod(ip.module) if ip.module else None) != module:
        return None
    hit = elf.symbols({ip.symbol}).get(ip.symbol)
    if hit is None or hit[2] >= len(elf.sections):
        return None
    value, _, shndx = hit
    sec = elf.sections[shndx]
    if sec.type == 8:  # NOBITS: a split .debug file
        return None
    at = (value if elf.etype == ET_REL else value - sec.addr) + ip.offset - code.trap_offset
    lo, hi = max(at, 0), min(at + len(code.data), sec.size)
    if hi - lo < 8:
        return None
    mine = elf.bytes_at(sec, lo, hi - lo)
    theirs = code.data[lo - at : hi - at]
    return sum(a == b for a, b in zip(mine, theirs)), hi - lo


def _code_note(elf: ElfFile, crash: Crash, module: str | None) -> tuple[str | None, str | None]:
    """(refusal, evidence): the Code: bytes must mostly equal the file's (relocations in a .ko and
    alternatives patched at boot change a few); more than a quarter different is another build."""
    got = check_code(elf, crash, module)
    if got is None:
        return None, None
    same, n = got
    if same * 4 < n * 3:
        where = f"{crash.ip.symbol}+{crash.ip.offset:#x}" if crash.ip is not None else "the faulting IP"
        return (
            f"the oops' Code: bytes differ from the file at {where} ({n - same} of {n})",
            None,
        )
    return None, f"Code: bytes {same}/{n} identical"


def check_vmlinux(
    path: str, crash: Crash, banner_log: str | None = None, build_id: str | None = None
) -> tuple[bool, str]:
    """(accepted, one-line note) for a vmlinux candidate."""
    try:
        elf = ElfFile.cached(path)
    except (ElfError, OSError) as e:
        return False, f"{path}: refused: {e}"
    try:
        if elf.etype == ET_REL:
            return False, f"{path}: refused: a relocatable object (a module?), not a vmlinux"
        banner = elf.banner()
        if banner is None:
            return False, f"{path}: refused: no linux_banner symbol (not a vmlinux, or symbols stripped)"
        m = re.match(r"Linux version (\S+)", banner)
        release = m.group(1) if m else None
        want = crash.kernel.release
        if want and release != want:
            return False, f"{path}: refused: vmlinux is release {release}, the crash is {want}"
        if crash.arch and elf.machine != crash.arch and not (crash.arch == "i386" and elf.machine == "i386"):
            return False, f"{path}: refused: {elf.machine} vmlinux, the crash is {crash.arch}"
        if build_id and elf.build_id and elf.build_id != build_id:
            return False, f"{path}: refused: build ID {elf.build_id} but the crash's kernel is {build_id}"
        bn = re.search(r"(#\d+)", crash.kernel.build or "")
        fb = re.search(r"\) (#\d+)", banner) or re.search(r"(#\d+)", banner)
        if bn and fb and bn.group(1) != fb.group(1):
            return False, f"{path}: refused: same release {release} but build {fb.group(1)}, the crash is {bn.group(1)}"
        if banner_log and not _same_banner(banner, banner_log):
            return False, (
                f"{path}: refused: same release {release} but another build: its banner is "
                f"'{banner[len('Linux version ') :]}', the log's is '{banner_log[len('Linux version ') :]}'"
            )
        bad = check_sizes(elf, _frame_sizes(crash, None))
        if bad:
            return False, f"{path}: refused: another build of {release}: {bad}"
        bad, code_ev = _code_note(elf, crash, None)
        if bad:
            return False, f"{path}: refused: another build of {release}: {bad}"
        if not elf.has_dwarf:
            return False, f"{path}: refused: matches release {release} but has no DWARF (.debug_info): stripped"
        how = [f"banner release {release}"]
        if banner_log:
            how.append("banner identical to the log's boot line")
        elif bn:
            how.append(f"build {bn.group(1)}")
        if build_id and elf.build_id == build_id:
            how.append("build ID")
        if _frame_sizes(crash, None):
            how.append(f"{len(_frame_sizes(crash, None))} function sizes")
        if code_ev:
            how.append(code_ev)
        return True, f"{path}: vmlinux matches the crash ({', '.join(how)})"
    finally:
        elf.release()


def check_module(path: str, name: str, crash: Crash, build_id: str | None = None) -> tuple[bool, str]:
    try:
        elf = ElfFile.cached(path)
    except (ElfError, OSError) as e:
        return False, f"{path}: refused: {e}"
    try:
        if elf.etype != ET_REL:
            return False, f"{path}: refused: not a relocatable .ko"
        mi = elf.modinfo()
        mname = elf.module_name()
        if mname and norm_mod(mname) != name:
            return False, f"{path}: refused: module {mname}, not {name}"
        vermagic = mi.get("vermagic", "")
        rel = vermagic.split()[0] if vermagic else None
        if rel and crash.kernel.release and rel != crash.kernel.release:
            return False, f"{path}: refused: {name} built for {rel} (vermagic), the crash is {crash.kernel.release}"
        if build_id and elf.build_id and elf.build_id != build_id:
            return False, f"{path}: refused: build ID {elf.build_id}, the log says {build_id}"
        if not elf.has_symtab:
            return False, f"{path}: refused: no symbol table (stripped)"
        bad = check_sizes(elf, _frame_sizes(crash, name))
        if bad:
            return False, f"{path}: refused: another build of {name}: {bad}"
        bad, code_ev = _code_note(elf, crash, name)
        if bad:
            return False, f"{path}: refused: another build of {name}: {bad}"
        if not elf.has_dwarf:
            return False, f"{path}: refused: {name} matches but has no DWARF (.debug_info): stripped"
        how = [f"vermagic {rel}" if rel else "no vermagic (split .debug file)"]
        if build_id and elf.build_id == build_id:
            how.append("build ID")
        n = len(_frame_sizes(crash, name))
        if n:
            how.append(f"{n} function sizes")
        if code_ev:
            how.append(code_ev)
        return True, f"{path}: {name} matches the crash ({', '.join(how)})"
    finally:
        elf.release()


def _build_id_path(d: Path, bid: str) -> Path:
    return d / ".build-id" / bid[:2] / f"{bid[2:]}.debug"


def vmlinux_candidates(crash: Crash, vmlinux: str | None, dirs: list[str]) -> list[tuple[str, str]]:
    """(path, how) in search order; paths that do not exist are still listed (they were looked at)."""
    rel = crash.kernel.release or "<release?>"
    out: list[tuple[str, str]] = []
    if vmlinux:
        out.append((vmlinux, "--vmlinux"))
    for d in dirs:
        p = Path(d)
        for c in (
            p / "vmlinux",
            p / f"vmlinux-{rel}",
            p / "boot" / f"vmlinux-{rel}",
            p / "lib/modules" / rel / "vmlinux",
            p / "usr/lib/debug/lib/modules" / rel / "vmlinux",
            p / "usr/lib/debug/boot" / f"vmlinux-{rel}",
        ):
            out.append((str(c), f"--debuginfo {d}"))
    r = _root()
    for c in (
        r / "usr/lib/debug/lib/modules" / rel / "vmlinux",
        r / "usr/lib/debug/boot" / f"vmlinux-{rel}",
        r / "boot" / f"vmlinux-{rel}",
        r / "lib/modules" / rel / "build" / "vmlinux",
        r / "lib/modules" / rel / "vmlinux",
    ):
        out.append((str(c), "distro layout"))
    return list(dict.fromkeys(out))


_WALKS: dict[tuple, list[Path]] = {}


def _walk_for(top: Path, names: set[str], limit: int = MAX_WALK) -> list[Path]:
    """Files named `names` under `top` (bounded; remembered per run: a log of many crashes walks once)."""
    key = (str(top), frozenset(names), limit)
    if key not in _WALKS:
        if len(_WALKS) > 256:
            _WALKS.clear()
        _WALKS[key] = _walk_uncached(top, names, limit)
    return _WALKS[key]


def _walk_uncached(top: Path, names: set[str], limit: int) -> list[Path]:
    found: list[Path] = []
    n = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(x for x in dirnames if not x.startswith(".") or x == ".debug")
        n += len(filenames) + len(dirnames)
        for f in filenames:
            if f in names:
                found.append(Path(dirpath) / f)
        if n > limit:
            break
    return found


def module_candidates(name: str, crash: Crash, dirs: list[str], vmlinux: str | None, looked: list[str] | None = None):
    """(path, how) for module `name`, lazily (build-tree walks only when the cheap places failed).

    `looked` receives one pattern per place (not every file name tried)."""
    rel = crash.kernel.release or "<release?>"
    looked = looked if looked is not None else []
    files = [f"{n}{ext}" for n in dict.fromkeys((name, name.replace("_", "-"))) for ext in (".ko", ".ko.debug")]
    tops = [(Path(d), f"--debuginfo {d}") for d in dirs]
    if vmlinux:  # a kernel build tree: modules next to the vmlinux
        tops.append((Path(vmlinux).resolve().parent, "the vmlinux's build tree"))
    for top, how in tops:
        looked.append(f"{top}/[*/]{name}.ko[.debug]")
        for f in files:
            yield str(top / f), how
        if top.is_dir():
            for sub in sorted(top.iterdir()):
                if sub.is_dir() and not sub.name.startswith("."):
                    for f in files:
                        yield str(sub / f), how
    for top, how in tops:
        if top.is_dir():
            looked.append(f"{top}/**/{name}.ko[.debug] (walk, at most {MAX_WALK} entries)")
            for p in _walk_for(top, set(files)):
                yield str(p), how
    r = _root()
    for top in (r / "usr/lib/debug/lib/modules" / rel, r / "lib/modules" / rel):
        looked.append(f"{top}/**/{name}.ko" + (".debug" if "debug" in str(top) else ""))
        if top.is_dir():
            for p in _walk_for(top, set(files), limit=200000):
                yield str(p), "distro layout"


def search(crash: Crash, vmlinux: str | None = None, dirs: list[str] | None = None) -> Search:
    dirs = list(dirs or [])
    s = Search(release=crash.kernel.release, wanted_modules=_wanted_modules(crash))
    bids = log_build_ids(crash)
    banner_log = log_banner(crash)
    tried: set[str] = set()
    cands = vmlinux_candidates(crash, vmlinux, dirs)
    r = _root()
    for bid_dir, how in [(Path(d), f"--debuginfo {d}") for d in dirs] + [(r / "usr/lib/debug", "distro layout")]:
        if "vmlinux" in bids:
            cands.append((str(_build_id_path(bid_dir, bids["vmlinux"])), how))
    for path, how in cands:
        s.looked.append(path)
        real = os.path.realpath(path)
        if real in tried or not os.path.isfile(path):
            continue
        tried.add(real)
        ok, note = check_vmlinux(path, crash, banner_log, bids.get("vmlinux"))
        if ok:
            s.vmlinux, s.vmlinux_how = path, how
            s.verified.append(note)
            break
        s.refused.append(note)
    for name in s.wanted_modules:
        first = []
        if name in bids:
            for d, how in [(Path(d), f"--debuginfo {d}") for d in dirs] + [(r / "usr/lib/debug", "distro layout")]:
                first.append((str(_build_id_path(d, bids[name])), how))
                s.looked.append(first[-1][0])
        import itertools

        for path, how in itertools.chain(first, module_candidates(name, crash, dirs, s.vmlinux, s.looked)):
            real = os.path.realpath(path)
            if real in tried or "**" in path or not os.path.isfile(path):
                continue
            tried.add(real)
            ok, note = check_module(path, name, crash, bids.get(name))
            if ok:
                s.modules[name], s.modules_how[name] = path, how
                s.verified.append(note)
                break
            s.refused.append(note)
    if "vmlinux" not in bids:
        s.looked.append(".build-id/ dirs not usable for vmlinux (the log prints no vmlinux build ID)")
    # debuginfod (DEBUGINFOD_URLS, elfutils' cache) for what is still missing, by build ID; verified like the rest
    from ktriage.debuginfo import debuginfod

    debuginfod.lookup(
        crash,
        s,
        bids,
        lambda p, bid: check_vmlinux(p, crash, banner_log, bid),
        lambda p, name, bid: check_module(p, name, crash, bid),
    )
    return s
