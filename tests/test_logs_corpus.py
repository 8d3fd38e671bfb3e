"""The log reader against syzkaller's report corpus, and the input forms a log reaches us in.

The corpus lives beside the repo (../shared/corpora/syzkaller, or $KTRIAGE_CORPUS; tests/realdata.py).
A clone without it skips these tests with that reason; where the corpus is present (the development
setup, CI) the floors fail rather than skip, so agreement cannot silently go unmeasured. Input-form tests transform REAL corpus text mechanically.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

from ktriage.logs import parse_log_text, scan_binary
from ktriage.logs.formats import FORMATS, TRIGGER
from realdata import CORPUS, corpus_path, needs_corpus

REPO = Path(__file__).resolve().parents[1]
pytestmark = needs_corpus

sys.path.insert(0, str(REPO / "bench"))
from corpus_eval import evaluate, read_case  # noqa: E402

# Floors: the numbers reached when this test was written, minus one point.
FLOOR_TITLE_EXACT = 98.4 - 1
FLOOR_KIND = 100.0 - 1
FLOOR_CORRUPTED = 94.2 - 1


def case(name: str) -> tuple[dict[str, list[str]], str]:
    return read_case(corpus_path(name))


def first(log: str):
    crashes = parse_log_text(log)
    assert crashes, "no crash found"
    return crashes[0]


# --- the floor -------------------------------------------------------------------------------


def test_corpus_floor() -> None:
    s = evaluate(CORPUS)["summary"]
    assert s["files"] >= 300
    assert s["title_exact_pct"] >= FLOOR_TITLE_EXACT, s
    assert s["kind_agree_pct"] >= FLOOR_KIND, s
    assert s["corrupted_agree_pct"] >= FLOOR_CORRUPTED, s
    assert s["crashes_in_negative_files"] == 0, s


def test_trigger_covers_every_header_line() -> None:
    """scan_binary skips chunks TRIGGER does not match: it must match every header any format matches."""
    missed = []
    for p in sorted(CORPUS.iterdir()):
        _, log = read_case(p)
        for line in log.splitlines():
            if any(f.header.search(line) for f in FORMATS) and not TRIGGER.search(line.encode()):
                missed.append((p.name, line))
    assert not missed, missed[:5]


def test_scan_binary_agrees_with_text() -> None:
    hdr, log = case("358")
    got = list(scan_binary(io.BytesIO(log.encode()), "358"))
    assert got and got[0].title == hdr["TITLE"][0]


# --- focused real reports (values checked by hand against the file) -------------------------


def test_arm64_internal_error() -> None:
    c = first(case("524")[1])
    assert (c.kind, c.title, c.guilty_frame, c.arch) == (
        "paging-request",
        "Internal error in ns558_init",
        "ns558_init",
        "arm64",
    )
    assert any(f.symbol == "ns558_init" for f in c.frames)


def test_arm64_syscall_prefix_stripped() -> None:
    c = first(case("316")[1])  # __arm64_sys_socket -> sys_socket
    assert c.title == "kernel panic: corrupted stack end in sys_socket" and c.arch == "arm64"


def test_ppc64_paging_request() -> None:
    c = first(case("431")[1])  # little-endian: `LE PAGE_SIZE=64K ...` and `MSR: ... <SF,...,LE,TM[E]>`
    assert c.arch == "ppc64le" and c.kind == "paging-request"
    assert c.title == "BUG: unable to handle kernel paging request in partition_sched_domains_locked"
    assert c.guilty_frame == "partition_sched_domains_locked"


def test_old_3x_hung_task() -> None:
    hdr, log = case("69")
    assert re.search(r"Not tainted 3\.\d", log)
    c = first(log)
    assert (c.kind, c.title, c.guilty_frame) == ("hung-task", "INFO: task hung in tty_ldisc_hangup", "tty_ldisc_hangup")


def test_hung_task_rtnl_anchor() -> None:
    c = first(case("72")[1])
    assert c.title == "INFO: task hung in rtnl_lock" and c.guilty_frame == "rtnl_lock"


def test_hung_task_header_cut_short() -> None:
    c = first(case("1000")[1])  # "INFO: t" then the whole header two lines later
    assert (c.kind, c.title) == ("hung-task", "INFO: task hung in read_cache_folio")


def test_rcu_stall() -> None:
    c = first(case("263")[1])
    assert (c.kind, c.title, c.guilty_frame) == (
        "rcu-stall",
        "INFO: rcu detected stall in snd_seq_write",
        "snd_seq_write",
    )


def test_lockdep_circular() -> None:
    hdr, log = case("32")
    c = first(log)
    assert (c.kind, c.title) == ("lockdep", "possible deadlock in serial8250_console_write")
    assert c.corrupted == (hdr.get("CORRUPTED", ["N"])[0] == "Y")


def test_caller_id_interleaving() -> None:
    hdr, log = case("470")
    assert len(set(re.findall(r"\]\[\s*(T\d+)\]", log))) > 2
    c = first(log)
    assert (c.kind, c.title, c.guilty_frame) == ("kasan", "KASAN: use-after-free Read in bcsp_close", "bcsp_close")


def test_untimestamped_harness_lines_inside_report() -> None:
    c = first(case("140")[1])  # syzkaller program text interleaved with the kernel's report
    assert c.title == "WARNING in strp_data_ready"


# --- input forms, made from real corpus text -------------------------------------------------

BASE = "358"
BASE_TITLE = "general protection fault in run_timer_softirq"
_TS = re.compile(r"^(\[\s*\d+\.\d+\])\s?")


def base_lines() -> list[str]:
    return case(BASE)[1].splitlines()


def _check(text: str) -> None:
    c = first(text)
    assert (c.kind, c.title, c.guilty_frame) == ("gpf", BASE_TITLE, "run_timer_softirq")


def test_form_syslog() -> None:
    _check("\n".join(f"Nov 22 04:21:52 host kernel: {ln}" for ln in base_lines()))


def test_form_journalctl_short_precise() -> None:
    _check("\n".join(f"Nov 22 04:21:52.{i:06d} host kernel: {_TS.sub('', ln)}" for i, ln in enumerate(base_lines())))


def test_form_dmesg_T() -> None:
    _check("\n".join(_TS.sub("[Sun Nov 22 04:21:52 2026] ", ln) for ln in base_lines()))


def test_form_printk_levels() -> None:
    _check("\n".join(f"<4>{ln}" for ln in base_lines()))


def test_form_mail_quoted() -> None:
    _check("\n".join(f"> {ln}" for ln in base_lines()))
    _check("\n".join(f"> > {ln}" for ln in base_lines()))


def test_form_crlf_ansi() -> None:
    _check("".join(f"\x1b[0;33m{ln}\x1b[0m\r\n" for ln in base_lines()))


def test_form_two_callers_interleaved() -> None:
    """Give the report one caller id and unrelated real lines (another file's) another one."""
    other = [ln for ln in case("499")[1].splitlines() if _TS.match(ln)]  # a log with no crash
    assert not parse_log_text("\n".join(other))
    other = (other * 4)[:60]
    mine = base_lines()
    out = []
    for i, ln in enumerate(mine):
        out.append(_TS.sub(lambda m: m.group(1) + "[ T1995] ", ln))
        if i < len(other):
            out.append(_TS.sub(lambda m: m.group(1) + "[ T4242] ", other[i]))
    _check("\n".join(out))


def test_form_cut_in_the_middle() -> None:
    lines = base_lines()
    head = next(i for i, ln in enumerate(lines) if "general protection fault" in ln)
    c = first("\n".join(lines[: head + 12]))  # ends inside the register dump
    assert c.kind == "gpf" and c.corrupted and c.corrupted_reason
