"""vmcore source: open a kernel dump with drgn, extract its log, give analyzers a live session.

    read_vmcore(path, opts, rec) -> Iterator[Crash]     (the pipeline's source for vmcores)
    session_for(crash) -> VmcoreSession | None          (what analyzers get as ctx.vmcore)

Tiers (each adds to the one before, none is required by the one before):
  raw      VMCOREINFO (release, page size, KASLR offset, build id, crash time) and raw memory;
           the kernel log decoded from the printk ring buffer with the layout VMCOREINFO publishes.
  symbols  + the kernel's own kallsyms (drgn load_vmlinux_kallsyms, kernels >= 6.0): addresses named.
  btf      + the kernel's BTF and its modules' split BTF from the dump's memory (ktriage.btf), globals typed from
           a table, ORC unwinding from memory: threads, stacks with registers, slab/task/socket decoders. No
           locals, inlined frames or source lines. Used only when no DWARF matches.
  dwarf    + vmlinux / module debug info: types, threads, stack traces with registers and locals,
           slab/task/socket decoders. When the dump also carries BTF, names (types, globals) come from it first
           and DWARF is read by address (ktriage.btf.dwarf_gate): drgn then never builds its DWARF name index.
The session says which tier it reached and which debug file (by name and build id) would unlock more.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ktriage.inputs import InputError
from ktriage.model import Crash, InputRecord, SourceSpan

if TYPE_CHECKING:  # drgn is imported when a dump is opened, not with this module
    import drgn

_SESSIONS: dict[int, VmcoreSession] = {}
MAX_DEBUG_SCAN = 4000  # files looked at per --debuginfo directory


@dataclass
class VmcoreSession:
    path: str
    prog: Any  # drgn.Program
    tier: str = "raw"  # raw, symbols, btf, dwarf
    vmcoreinfo: dict[str, str] = field(default_factory=dict)
    dump_format: str = ""
    loaded: list[str] = field(default_factory=list)  # "name: path" of debug files loaded
    missing: list[str] = field(default_factory=list)  # "name (build id ...)" without debug info
    notes: list[str] = field(default_factory=list)  # what could not be read
    dmesg: str = ""
    dmesg_source: str = ""
    system: dict[str, str] = field(default_factory=dict)
    tmpdir: str | None = None
    btf: Any = None  # ktriage.btf.BTFTier when the btf tier runs
    symbol_source: str = "kallsyms"  # without DWARF: kallsyms (VMCOREINFO), a System.map, or tables found in memory
    dwarf_gate: Any = None  # ktriage.btf.dwarf_gate.DwarfGate when BTF answers names before DWARF
    pending: tuple[str | None, list[str], bool] | None = None  # (vmlinux, dirs, btf) until finish_open loads them
    primary: int | None = None  # id() of the crash the dump was taken for
    _trace: Any = None
    _trace_error: str | None = None

    def is_primary(self, crash: Crash) -> bool:
        return self.primary is None or self.primary == id(crash)

    @property
    def has_types(self) -> bool:
        return self.tier in ("btf", "dwarf")

    @property
    def has_dwarf(self) -> bool:
        """Locals, inlined frames and source lines: only DWARF has them."""
        return self.tier == "dwarf"

    def crashed_thread(self) -> drgn.Thread:
        return self.prog.crashed_thread()

    def crashed_trace(self) -> list[drgn.StackFrame] | None:
        """The crashed thread's stack trace (cached), or None with `trace_error` set."""
        if self._trace is None and self._trace_error is None:
            try:
                self._trace = kernel_frames(self.prog.crashed_thread().stack_trace())
            except Exception as e:  # noqa: BLE001 - drgn raises several kinds
                self._trace_error = f"{type(e).__name__}: {e}"
        return self._trace

    @property
    def trace_error(self) -> str | None:
        return self._trace_error

    def wanted_debuginfo(self) -> list[str]:
        """What to give ktriage to reach the next tier, by name and build id."""
        if self.tier == "dwarf" and not self.missing:
            return []
        return list(self.missing)

    def close(self) -> None:
        self.prog = None
        self._trace = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def kernel_frames(trace: Iterable[drgn.StackFrame]) -> list[drgn.StackFrame]:
    """The frames down to the first user-space one (past it, drgn walks user stacks without their CFI), and
    never the same frame twice in a row: an unwinder that cannot leave a frame (seen on arm64 with CFI for a
    leaf function entered through an exception) would repeat it up to drgn's limit."""
    out: list[drgn.StackFrame] = []
    seen = None
    for f in trace:
        key = (f.pc, _frame_position(f), f.name, f.is_inline)  # inlined frames share pc and sp with their caller
        if key == seen:
            break
        seen = key
        out.append(f)
        if f.pc < 0xFFFF800000000000:
            break
    return out


def _frame_position(f: drgn.StackFrame) -> int | None:
    try:
        return f.sp
    except LookupError:
        try:
            return f.registers().get("fp")
        except Exception:  # noqa: BLE001
            return None


def session_for(crash: Crash) -> VmcoreSession | None:
    """The open session a crash was read from (registered by read_vmcore)."""
    s = _SESSIONS.get(id(crash))
    if s is not None:
        return s
    if crash.source.format == "vmcore":
        for s in _SESSIONS.values():
            if s.path == crash.source.path:
                return s
    return None


def _register(crash: Crash, session: VmcoreSession) -> None:
    _SESSIONS[id(crash)] = session
    weakref.finalize(crash, _SESSIONS.pop, id(crash), None)


# --- opening ----------------------------------------------------------------------------------


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(4096)


def _format_of(head: bytes) -> str:
    if head.startswith(b"KDUMP   "):
        return "kdump-compressed (makedumpfile/diskdump)"
    if head.startswith(b"DISKDUMP"):
        return "diskdump"
    if head.startswith(b"makedumpfile"):
        return "makedumpfile flattened"
    if head.startswith(b"\x7fELF"):
        return "ELF core"
    return "unknown"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def open_program(path: str, session_notes: list[str]) -> tuple[Any, str | None]:
    """drgn.Program on the dump. A flattened file is read in place (libkdumpfile reads that format), else
    reassembled in a temp dir with `makedumpfile -R`. Raises InputError."""
    try:
        import drgn  # noqa: F401 - only to say so in one line when it is missing
    except ImportError:
        raise InputError(f"{path}: a kernel dump (vmcore); vmcore analysis needs drgn (pip install drgn)") from None
    from ktriage.drgn_plugins import lazy_helper_package

    lazy_helper_package()
    try:
        head = _head(path)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    errors: list[str] = []
    if head.startswith(b"makedumpfile"):
        # Why in place: reassembling copies the whole dump (40 MB for a small guest, gigabytes for a server) to a
        # temporary file before drgn can start; libkdumpfile (0.5.1 and later) maps the flattened segments itself
        prog = _try_open(path, errors)
        if prog is not None:
            # opening scans every segment header through libkdumpfile's mapped windows of the file: ~the whole
            # file stays resident (page-cache pages, +40 MB of RSS for a 40 MB dump); give them back as for the
            # vmlinux (ktriage.residency), a page read later faults back in
            from ktriage.residency import drop_resident

            drop_resident(path)
            session_notes.append(
                "flattened makedumpfile format: read in place by libkdumpfile (the input is untouched)"
            )
            return prog, None
        return _open_reassembled(path, session_notes)
    prog = _try_open(path, errors)
    if prog is None:
        raise InputError(f"{path}: not readable as a kernel dump: {errors[0]}")
    return prog, None


def _try_open(target: str, errors: list[str]) -> Any:
    """A drgn.Program on `target` if drgn takes it as a Linux kernel dump, else None with the reasons in `errors`."""
    import logging

    import drgn

    from ktriage.drgn_plugins import without_drgn_command_plugins

    # drgn warns (logger "drgn") that a flattened file may be slow to open: that is measured, not the user's problem
    logging.getLogger("drgn").setLevel(logging.ERROR)
    for make in (lambda: drgn.Program(), lambda: drgn.Program(drgn.host_platform)):
        prog = make()
        try:
            with without_drgn_command_plugins():  # why: see ktriage.drgn_plugins (~75 ms)
                prog.set_core_dump(target)
            if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
                errors.append("not a Linux kernel dump (no VMCOREINFO)")
                continue
            return prog
        except Exception as e:  # noqa: BLE001 - drgn.Error, OSError, ValueError
            errors.append(_one_line(e))
    return None


def _open_reassembled(path: str, session_notes: list[str]) -> tuple[Any, str | None]:
    """A flattened dump libkdumpfile did not take: `makedumpfile -R` into a temp dir, then drgn on that."""
    if not shutil.which("makedumpfile"):
        raise InputError(
            f"{path}: flattened makedumpfile format; reassemble it with `makedumpfile -R out < "
            f"{path}` (makedumpfile is not installed here)"
        )
    tmpdir = tempfile.mkdtemp(prefix="ktriage-vmcore-")
    target = os.path.join(tmpdir, "vmcore")
    with open(path, "rb") as src:
        r = subprocess.run(["makedumpfile", "-R", target], stdin=src, capture_output=True, timeout=600)
    if r.returncode != 0 or not os.path.exists(target):
        shutil.rmtree(tmpdir, ignore_errors=True)
        err = r.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(
            f"{path}: flattened makedumpfile dump could not be reassembled: "
            f"{err[-1] if err else 'makedumpfile -R failed'}"
        )
    session_notes.append(
        "flattened makedumpfile format: reassembled with `makedumpfile -R` into a temporary "
        "file (the input is untouched)"
    )
    errors: list[str] = []
    prog = _try_open(target, errors)
    if prog is None:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise InputError(f"{path}: not readable as a kernel dump: {errors[0]}")
    return prog, tmpdir


def _default_debug_paths(release: str) -> list[str]:
    return [
        p
        for p in (
            f"/usr/lib/debug/boot/vmlinux-{release}",
            f"/usr/lib/debug/lib/modules/{release}/vmlinux",
            f"/boot/vmlinux-{release}",
            f"/lib/modules/{release}/build/vmlinux",
            f"/usr/lib/debug/lib/modules/{release}",
        )
        if os.path.exists(p)
    ]


def _scan_dir(d: str) -> list[str]:
    out: list[str] = []
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for n in sorted(files):
            if n.startswith("vmlinux") or n.endswith((".ko", ".ko.debug", ".debug")):
                out.append(os.path.join(root, n))
            if len(out) >= MAX_DEBUG_SCAN:
                return out
    return out


def load_debug_info(s: VmcoreSession, vmlinux: str | None, dirs: list[str], btf: bool = True) -> None:
    """vmlinux / modules' DWARF when given or found; otherwise kallsyms. Sets tier, loaded, missing."""
    import drgn

    prog = s.prog
    release = s.vmcoreinfo.get("OSRELEASE", "")
    paths: list[str] = []
    if vmlinux:
        if not os.path.exists(vmlinux):
            s.notes.append(f"--vmlinux {vmlinux}: no such file")
        else:
            paths.append(vmlinux)
    for d in dirs:
        if os.path.isdir(d):
            paths += _scan_dir(d)
        elif os.path.isfile(d) and not os.path.basename(d).startswith("System.map"):  # a map is for symbols
            paths.append(d)
    defaults = _default_debug_paths(release) if release else []
    for p in defaults:
        paths += _scan_dir(p) if os.path.isdir(p) else [p]
    if not vmlinux and not any(os.path.basename(p).startswith("vmlinux") for p in paths):
        paths += _from_debuginfod(s)
    first = _names_first(s, paths, release) if paths and btf else False
    if paths and not first:
        try:
            prog.load_debug_info(paths)
        except drgn.MissingDebugInfoError:
            pass
        except Exception as e:  # noqa: BLE001
            s.notes.append(f"debug info could not be loaded: {_one_line(e)}")
    try:
        mods = list(prog.modules())
    except Exception:  # noqa: BLE001
        mods = []
    main_ok = False
    for m in mods:
        try:
            has = m.debug_file_path is not None
            bid = m.build_id.hex() if m.build_id else None
        except Exception:  # noqa: BLE001
            continue
        kind = "vmlinux" if isinstance(m, drgn.MainModule) else f"{m.name}.ko"
        if has:
            s.loaded.append(f"{kind}: {m.debug_file_path}")
            if isinstance(m, drgn.MainModule):
                main_ok = True
        elif isinstance(m, (drgn.MainModule, drgn.RelocatableModule)):
            s.missing.append(
                f"{kind}"
                + (f" (build id {bid})" if bid else "")
                + (f" for kernel {release}" if isinstance(m, drgn.MainModule) and release else "")
            )
    if not mods:
        bid = s.vmcoreinfo.get("BUILD-ID")
        s.missing.append(f"vmlinux (build id {bid})" if bid else "vmlinux")
    if main_ok:
        s.tier = "dwarf"
        return
    if vmlinux and os.path.exists(vmlinux):
        bid = s.vmcoreinfo.get("BUILD-ID")
        s.notes.append(
            f"--vmlinux {vmlinux} was not used: it does not match the dump"
            + (f" (the dump's kernel has build id {bid})" if bid else "")
        )
    # no kernel DWARF: the kernel's own symbol table, from memory
    from drgn.helpers.linux.kallsyms import load_module_kallsyms, load_vmlinux_kallsyms

    if s.vmcoreinfo and "SYMBOL(kallsyms_names)" not in s.vmcoreinfo:
        from ktriage.vmcore.symbols import kernel_symbols  # before 6.0: a System.map, or kallsyms found in memory

        found, refused = kernel_symbols(prog, s.vmcoreinfo, [vmlinux or "", *dirs])
        s.notes.extend(refused)
        if found is None:
            s.notes.append(
                "no kallsyms in VMCOREINFO (kernels before 6.0 do not publish it), no System.map of this build and "
                "no kallsyms tables found in memory: only the kernel log and raw memory can be read (tier raw)"
            )
            return
        prog.register_symbol_finder("vmlinux_kallsyms", found.index, enable_index=0)
        s.notes.append(found.source)
        s.symbol_source = found.short
        s.tier = "symbols"
    else:
        try:
            prog.register_symbol_finder("vmlinux_kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
            s.tier = "symbols"
        except Exception as e:  # noqa: BLE001
            s.notes.append(f"kallsyms could not be read from the dump: {_one_line(e)}")
            return
    if btf:
        _enable_btf(s, release)
    else:
        s.notes.append("BTF tier not tried (--no-btf)")
    if s.tier == "symbols":
        try:  # without types this needs more than VMCOREINFO on most kernels; the btf tier registers it itself
            prog.register_symbol_finder("module_kallsyms", load_module_kallsyms(prog), enable_index=1)
        except Exception:  # noqa: BLE001
            pass


def _names_first(s: VmcoreSession, paths: list[str], release: str) -> bool:
    """The dwarf tier with names from the dump's BTF (ktriage.vmcore.btf_names says why and when)."""
    from ktriage.vmcore.btf_names import names_first

    got = names_first(s.prog, paths, release)
    if isinstance(got, str):
        s.notes.append(f"names from DWARF (drgn indexes it): the dump's BTF could not be read ({got})")
        return False
    if got is None:
        return False
    s.btf, s.dwarf_gate = got
    s.notes.append(
        f"names (types, globals) from the dump's BTF ({s.btf.vmlinux_types} types) first; DWARF read by address "
        "for locals, inlined frames and source lines, and by name only for what BTF lacks and DWARF may have"
    )
    return True


def _from_debuginfod(s: VmcoreSession) -> list[str]:
    """The dump's vmlinux by the build ID VMCOREINFO publishes, from elfutils' cache or DEBUGINFOD_URLS."""
    bid = s.vmcoreinfo.get("BUILD-ID")
    if not bid:
        return []
    from ktriage.debuginfo import debuginfod

    got = debuginfod.fetch(bid)
    if got.path or debuginfod.urls():
        s.notes.append(f"debuginfod, vmlinux (build id {bid}): " + "; ".join(got.steps))
    return [got.path] if got.path else []


def _enable_btf(s: VmcoreSession, release: str) -> None:
    """The btf tier: types from the dump's own BTF (ktriage.btf). Never used when DWARF matched."""
    from ktriage.btf import enable

    try:
        s.btf = enable(s.prog, release, s.symbol_source)
    except LookupError as e:
        s.notes.append(f"no BTF tier: {_one_line(e)}")
        return
    except Exception as e:  # noqa: BLE001 - BTFError, drgn.FaultError (BTF pages missing from the dump)
        s.notes.append(f"no BTF tier: the kernel's BTF could not be read from the dump ({_one_line(e)})")
        return
    s.tier = "btf"
    s.notes.append(s.btf.summary())
    s.notes.extend(s.btf.notes)


# --- the log and the sys facts ------------------------------------------------------------------


def _read_vmcoreinfo(s: VmcoreSession) -> None:
    from ktriage.vmcore.printk import vmcoreinfo_dict

    try:
        raw = bytes(s.prog["VMCOREINFO"].value_())
        s.vmcoreinfo = vmcoreinfo_dict(raw.rstrip(b"\0").decode("utf-8", "replace"))
    except Exception as e:  # noqa: BLE001
        s.notes.append(f"VMCOREINFO could not be read: {_one_line(e)}")


def _read_dmesg(s: VmcoreSession) -> None:
    from ktriage.vmcore.printk import dmesg_from_vmcoreinfo

    if s.has_types:
        try:
            from drgn.helpers.linux.printk import get_dmesg

            s.dmesg = get_dmesg(s.prog).decode("utf-8", "replace")
            s.dmesg_source = "printk ring buffer (drgn get_dmesg, with types)"
            return
        except Exception as e:  # noqa: BLE001
            s.notes.append(f"kernel log through debug info failed ({_one_line(e)}); trying VMCOREINFO's layout")
    try:
        text = dmesg_from_vmcoreinfo(s.prog, s.vmcoreinfo)
    except Exception as e:  # noqa: BLE001
        text = None
        s.notes.append(f"kernel log could not be decoded: {_one_line(e)}")
    if text is None:
        if not any("kernel log" in n for n in s.notes):
            s.notes.append(
                "kernel log could not be decoded without debug info (VMCOREINFO does not describe the "
                "printk ring buffer: kernel older than 5.10?)"
            )
        return
    if not text.strip():
        s.notes.append("kernel log is empty or its pages are missing from the dump")
    s.dmesg = text
    s.dmesg_source = "printk ring buffer (decoded with the layout VMCOREINFO publishes, no types)"


def _fmt_bytes(n: int) -> str:
    for unit, sh in (("GB", 30), ("MB", 20), ("KB", 10)):
        if n >= 1 << sh:
            v = n / (1 << sh)
            return f"{v:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


def _system(s: VmcoreSession) -> dict[str, str]:
    """crash's `sys`: what the dump alone says, then what types add."""
    import datetime

    vi = s.vmcoreinfo
    sysd: dict[str, str] = {}
    sysd["DUMPFILE"] = f"{s.path} [{s.dump_format}]"
    if vi.get("OSRELEASE"):
        sysd["RELEASE"] = vi["OSRELEASE"]
    if vi.get("CRASHTIME"):
        try:
            t = datetime.datetime.fromtimestamp(int(vi["CRASHTIME"]), datetime.timezone.utc)
            sysd["DATE"] = t.strftime("%a %b %d %H:%M:%S UTC %Y")
        except (ValueError, OverflowError):
            pass
    if vi.get("PAGESIZE"):
        sysd["PAGESIZE"] = vi["PAGESIZE"]
    if vi.get("KERNELOFFSET"):
        sysd["KERNELOFFSET"] = "0x" + vi["KERNELOFFSET"]
    if vi.get("BUILD-ID"):
        sysd["BUILD-ID"] = vi["BUILD-ID"]
    sysd["DEBUGINFO"] = s.tier
    if s.dmesg:
        import re

        stamps = re.findall(r"^\[\s*(\d+)\.(\d+)\]", s.dmesg, re.M)
        if stamps:
            sec = int(stamps[-1][0])
            sysd["UPTIME"] = f"{sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d} (last log record)"
    if not s.has_types:
        return sysd
    prog = s.prog
    try:
        uts = prog["init_uts_ns"].name
        sysd["NODENAME"] = uts.nodename.string_().decode()
        sysd["RELEASE"] = uts.release.string_().decode()
        sysd["VERSION"] = uts.version.string_().decode()
        sysd["MACHINE"] = uts.machine.string_().decode()
    except Exception:  # noqa: BLE001
        pass
    try:
        from drgn.helpers.linux.cpumask import num_online_cpus, num_possible_cpus

        sysd["CPUS"] = f"{num_online_cpus(prog)} online of {num_possible_cpus(prog)} possible"
    except Exception:  # noqa: BLE001
        pass
    try:
        pages = prog["_totalram_pages"].counter.value_()
        sysd["MEMORY"] = _fmt_bytes(pages * int(vi.get("PAGESIZE", "4096"))) + " (totalram)"
    except Exception:  # noqa: BLE001
        pass
    try:
        av = prog["avenrun"]
        sysd["LOAD AVERAGE"] = ", ".join(f"{av[i].value_() / 2048:.2f}" for i in range(3))
    except Exception:  # noqa: BLE001
        pass
    try:
        from drgn.helpers.linux.pid import for_each_task

        n = 0
        for _ in for_each_task(prog):
            n += 1
            if n > 1_000_000:
                break
        sysd["TASKS"] = str(n)
    except Exception:  # noqa: BLE001
        pass
    try:
        from drgn.helpers.linux.panic import panic_message, tainted

        msg = panic_message(prog)
        if msg:
            sysd["PANIC"] = msg.decode("utf-8", "replace").strip()
        else:
            import re

            found = re.findall(r"Kernel panic - not syncing: ([^\n]*)", s.dmesg)
            if found:
                sysd["PANIC"] = "Kernel panic - not syncing: " + found[-1].strip()
        sysd["TAINT"] = tainted(prog).strip() or "none"
    except Exception:  # noqa: BLE001
        pass
    try:
        th = prog.crashed_thread()
        t = th.object
        sysd["PANIC TASK"] = f"{t.comm.string_().decode()} (pid {th.tid}, cpu {_task_cpu(t)})"
    except Exception:  # noqa: BLE001
        pass
    return sysd


def _task_cpu(task: drgn.Object) -> str:
    try:
        from drgn.helpers.linux.sched import task_cpu

        return str(task_cpu(task))
    except Exception:  # noqa: BLE001
        return "?"


def _fallback_crash(s: VmcoreSession) -> Crash:
    """The dump holds no oops in its log (log unreadable, or a dump taken by sysrq/NMI without one)."""
    panic = s.system.get("PANIC")
    title = f"kernel panic: {panic}" if panic else "vmcore without a readable crash report in its log"
    return Crash(
        kind="panic" if panic else "unknown", title=title, source=SourceSpan(s.path, 0, 0, "vmcore"), panic=panic
    )


# --- opening, on a worker thread when the caller asks early --------------------------------------

_OpenArgs = tuple[str, "str | None", tuple[str, ...], bool]
_PREFETCH: dict[_OpenArgs, concurrent.futures.Future[VmcoreSession]] = {}


def _open_args(path: str, opts: object) -> _OpenArgs:
    """The key of an open: `opts` is the pipeline's Options or the CLI's early copy of the same fields."""
    return (
        os.path.realpath(path),
        getattr(opts, "vmlinux", None),
        tuple(getattr(opts, "debuginfo_dirs", None) or ()),
        bool(getattr(opts, "btf", True)),
    )


def _open_session(
    path: str, vmlinux: str | None, dirs: tuple[str, ...], btf: bool, early: bool = False
) -> VmcoreSession:
    """The dump opened, VMCOREINFO read and the best debug tier loaded. Raises InputError.

    early (on open_early's worker thread): the debug info is loaded here only when that is drgn's C code
    building a DWARF index, which releases the GIL; the tiers that run Python (names from BTF, the btf and
    symbols tiers) are left to finish_open on the main thread, where they do not contend with its imports
    (measured: ~0.1 s more CPU and wall time when they ran beside them)."""
    notes: list[str] = []
    prog, tmpdir = open_program(path, notes)
    s = VmcoreSession(path, prog, notes=notes, tmpdir=tmpdir, dump_format=_format_of(_head(path)))
    _read_vmcoreinfo(s)
    s.pending = (vmlinux, list(dirs), btf)
    if not early or _index_ahead(s, vmlinux, btf):
        finish_open(s)
    return s


def _index_ahead(s: VmcoreSession, vmlinux: str | None, btf: bool) -> bool:
    """Will loading the debug info be drgn indexing DWARF (the vmlinux matches and names cannot come from
    BTF: a kernel built without it, or --no-btf)? Only C code runs to find out."""
    from ktriage.vmcore.btf_names import attach_vmlinux, btf_names_suffice

    release = s.vmcoreinfo.get("OSRELEASE", "")
    candidates = [p for p in [vmlinux or "", *(_default_debug_paths(release) if release else [])] if os.path.isfile(p)]
    if not candidates:  # nothing to index (and no module made here that load_debug_info would not have made)
        return False
    if attach_vmlinux(s.prog, candidates) is None:
        return False
    return not btf or not btf_names_suffice(s.prog)


def finish_open(s: VmcoreSession) -> None:
    """What _open_session left to the main thread, if anything."""
    if s.pending is None:
        return
    vmlinux, dirs, btf = s.pending
    s.pending = None
    load_debug_info(s, vmlinux, dirs, btf=btf)
    if s.tier == "dwarf":
        # the vmlinux pages drgn read need not stay mapped (ktriage.residency): those of its DWARF index, or,
        # with names from BTF, those of the address-to-unit table that unwinding the crashed thread builds
        # (libdw reads every compilation unit's first DIE: ~110 MB of a distribution vmlinux's mapping)
        from ktriage.residency import drop_resident_vmlinux

        if s.dwarf_gate is not None:
            s.crashed_trace()
        drop_resident_vmlinux(s.prog)


def looks_like_vmcore(path: str) -> bool:
    """A kdump/diskdump/flattened/ELF-core signature at the start of a regular file (no decompression)."""
    try:
        if not os.path.isfile(path):
            return False
        head = _head(path)
    except OSError:
        return False
    if head.startswith(b"\x7fELF") and len(head) >= 18:
        return int.from_bytes(head[16:18], "little" if head[5:6] == b"\x01" else "big") == 4
    return head.startswith((b"KDUMP   ", b"DISKDUMP", b"makedumpfile"))


def prefetch(path: str, opts: object) -> bool:
    """Start opening a vmcore and loading its debug info on a worker thread; read_vmcore takes the result.

    Why: drgn releases the GIL while it reads the dump and reads and indexes the DWARF (0.1-0.2 s on a
    distribution kernel), so that work runs on a second core while the main thread imports the log
    parsers, analyzers and knowledge base (~0.2 s). The worker imports drgn, ktriage.btf and the
    debuginfod client; none of them imports the modules the main thread is importing meanwhile, so the two
    threads can only wait for each other's imports, never deadlock on them.
    """
    if os.environ.get("KTRIAGE_PREFETCH") != "1":
        # off by default in the command's own process: the pipeline reads each dump in a forked child (a damaged
        # dump cannot kill the run), and a parent that opened a dump here runs drgn's OpenMP threads, which a
        # fork must not copy. The child overlaps the same way instead (open_early, from ktriage.pipeline).
        return False
    return open_early(path, opts)


def open_early(path: str, opts: object) -> bool:
    """Start opening `path` on a worker thread now (prefetch says why); False when it is not a dump this may
    open off the main thread. Safe only in a process that will not fork afterwards (the dump's own child)."""
    if not looks_like_vmcore(path):
        return False
    from ktriage.vmcore.guard import validate

    if not validate(path).ok:  # a dump that may crash the reader is opened only in the pipeline's child process
        return False
    import concurrent.futures
    import logging

    logging.getLogger("drgn").setLevel(logging.ERROR)
    want = _open_args(path, opts)
    if want in _PREFETCH:
        return True
    import threading

    fut: concurrent.futures.Future[VmcoreSession] = concurrent.futures.Future()

    def work() -> None:
        try:
            fut.set_result(_open_session(*want, early=True))
        except BaseException as e:  # noqa: BLE001 - handed to read_vmcore, which re-raises it
            fut.set_exception(e)

    fut.add_done_callback(_clean_if_untaken)
    _PREFETCH[want] = fut
    # a daemon thread: Ctrl-C or an early error must not wait for drgn to finish indexing
    threading.Thread(target=work, name="ktriage-vmcore-open", daemon=True).start()
    return True


def _clean_if_untaken(fut: concurrent.futures.Future[VmcoreSession]) -> None:
    """A reassembled temporary dump must not outlive the run even if nobody asks for the session."""
    try:
        s = fut.result()
    except BaseException:  # noqa: BLE001 - read_vmcore re-raises it when it asks
        return
    if s.tmpdir:
        atexit.register(s.close)


def settle_prefetch() -> None:
    """Wait for dumps being opened on the worker thread: the pipeline forks a child per dump, and a fork must
    not copy a half-done open whose thread does not exist in the child."""
    for fut in list(_PREFETCH.values()):
        concurrent.futures.wait([fut])


def drop_prefetched(path: str) -> None:
    """The parent's copy of a dump the child read: free it (the child had its own after the fork)."""
    real = os.path.realpath(path)
    for key in [k for k in _PREFETCH if k[0] == real]:
        fut = _PREFETCH.pop(key)
        try:
            fut.result().close()
        except BaseException:  # noqa: BLE001 - the child reported whatever went wrong
            pass


def _take_prefetched(want: _OpenArgs) -> VmcoreSession | None:
    fut = _PREFETCH.pop(want, None)
    return None if fut is None else fut.result()  # re-raises the worker's InputError


def read_vmcore(path: str, opts: object, rec: InputRecord) -> Iterator[Crash]:
    """The crashes a vmcore's own kernel log describes, each with `system` facts and a live session."""
    import logging

    from ktriage.logs import scan_records
    from ktriage.logs.records import records

    logging.getLogger("drgn").setLevel(logging.ERROR)  # drgn's DWARF-opcode warnings are not the user's problem
    key = _open_args(path, opts)
    s = _take_prefetched(key) or _open_session(*key)
    finish_open(s)
    rec.format = "vmcore"
    tmpdir = s.tmpdir
    _read_dmesg(s)
    try:
        s.system = _system(s)
    except Exception as e:  # noqa: BLE001
        s.notes.append(f"system facts could not be read: {_one_line(e)}")
    if s.has_types and s.crashed_trace() is None:
        s.notes.append(f"the crashed thread's stack could not be unwound: {s.trace_error}")
    if s.tier == "btf":
        want = "; ".join(s.missing) or "the kernel's vmlinux with debug info"
        s.notes.append(
            f"no kernel debug info (tier: btf): types from the dump's BTF, no locals, inlined frames or "
            f"source lines; give --vmlinux / --debuginfo with: {want}"
        )
    elif s.tier != "dwarf":
        want = "; ".join(s.missing) or "the kernel's vmlinux with debug info"
        s.notes.append(
            f"no kernel debug info (tier: {s.tier}): no types, threads, stacks or object decoding; "
            f"give --vmlinux / --debuginfo with: {want}"
        )
    elif s.missing:
        s.notes.append("no debug info for: " + "; ".join(s.missing))
    lines = s.dmesg.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    crashes = scan_records(records(enumerate(lines, 1)), path, "vmcore") if s.dmesg else []
    if not crashes:
        crashes = [_fallback_crash(s)]
    partial = [n for n in s.notes if any(w in n for w in ("could not", "missing", "empty"))]
    if partial:
        rec.status = "partial"
        what = [
            w
            for w, key in (
                ("the kernel log", "kernel log"),
                ("the crashed thread's stack", "stack"),
                ("system facts", "system facts"),
            )
            if any(key in n for n in partial)
        ]
        size = os.path.getsize(path)
        s.notes.append(
            f"memory reads failed: the dump is truncated or corrupt (file size {size} bytes); what the "
            f"readable pages give is reported"
        )
        rec.error = (
            f"{path}: partial vmcore: {', '.join(what) or 'some memory'} could not be read "
            f"(truncated or corrupt dump, {size} bytes)"
        )
    rec.notes.extend(s.notes)
    if tmpdir:
        atexit.register(s.close)
    ids = []
    try:
        for i, c in enumerate(crashes):
            c = c.replace(system={**s.system, **dict(c.system)})
            if i == len(crashes) - 1:
                s.primary = id(c)  # the last crash in the log is the one the dump was taken for
            _register(c, s)
            ids.append(id(c))
            yield c
    finally:
        # the pipeline analyzes each crash before asking for the next: once all are done, free the dump
        # (a directory of vmcores must not keep every drgn program and its debug info in memory)
        for k in ids:
            _SESSIONS.pop(k, None)
        s.close()
