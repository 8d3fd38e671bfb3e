"""The log reader on real crash texts from bug trackers, mailing lists and forums (tests/corpora/real).

Every file's expected answers (kind, guilty function, frames, arch, release, task, fault address, whether it is
a crash at all) were checked by hand against the text and written to index.yaml with the file's source URL;
this test holds the reader to every one of them, so a regression names the file and the field.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from ktriage.logs import parse_log_text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from corpus_eval import REAL_INDEX, check_real, load_real_index  # noqa: E402

ENTRIES = load_real_index(REAL_INDEX)


def test_index_lists_every_file_once() -> None:
    listed = [e["file"] for e in ENTRIES]
    on_disk = sorted(str(p.relative_to(REAL_INDEX.parent)) for p in REAL_INDEX.parent.rglob("*.log"))
    assert sorted(listed) == on_disk
    assert all(e.get("source", "").startswith("http") for e in ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_hand_checked_answers(entry: dict) -> None:
    text = (REAL_INDEX.parent / entry["file"]).read_bytes().decode("utf-8", "replace")
    crashes = parse_log_text(text, entry["file"])
    result = check_real(crashes, entry["expect"])
    wrong = sorted(field for field, ok in result.items() if not ok)
    c = crashes[0] if crashes else None
    got = c and (c.kind, c.title, c.guilty_frame, c.arch, c.kernel.release, c.task.comm, c.task.pid)
    assert not wrong, f"{entry['file']}: wrong {wrong}; got {got}"


def test_header_wrapped_after_at_reads_no_address_from_the_word() -> None:
    """A mail client wraps `...NULL pointer dereference at` / `0000000000000286` (syzkaller corpus 112, wrapped
    mechanically): the "a" of "at" is not the address 0xa; the address comes from CR2 (0x286 in that report)."""
    from realdata import corpus_log

    log = corpus_log("112")
    wrapped = log.replace(
        "NULL pointer dereference at 0000000000000286", "NULL pointer dereference at\n0000000000000286"
    )
    assert wrapped != log
    c = parse_log_text(wrapped)[0]
    assert c.kind == "null-deref" and c.fault_address == 0x286


def test_sentence_quoting_a_header_is_not_a_crash_but_a_chinese_postmortem_quote_is() -> None:
    """Prose rule (tests/corpora/real/prose/*) against its one exception: 内核报错“...” quotes the kernel's own
    message (the seed-001 post-mortem the knowledge base uses as a positive example)."""
    kb = REPO / "tests" / "fixtures" / "kb" / "tcp-listener-freed-sock-lookup" / "positive-1.txt"
    crashes = parse_log_text(kb.read_text(encoding="utf-8"))
    assert crashes and crashes[0].kind == "paging-request"


def test_ureport_is_refused_in_one_line(tmp_path: Path) -> None:
    """The head of a kernel-oops uReport as `reporter-ureport -vvv` posted it (abrt/abrt#1510, cut where the
    issue's excerpt ends): refused with one line and exit 3, never read as a log (its `reason` holds a header)."""
    import subprocess

    src = REAL_INDEX.parent / "ureport" / "abrt-1510-ureport-head.json"
    r = subprocess.run(
        [sys.executable, "-m", "ktriage.cli", "analyze", str(src)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 3 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "ABRT uReport" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "wrap",
    [
        # Docker json-file driver, Elasticsearch/Graylog export hit, Kubernetes CRI file, a log shipper's line
        lambda line: json.dumps({"log": line + "\n", "stream": "stdout", "time": "2013-06-27T13:35:45.1Z"}),
        lambda line: json.dumps({"_index": "syslog-2013.06", "_source": {"message": line, "host": "sagan"}}),
        lambda line: "2013-06-27T13:35:45.000000000Z stdout F " + line,
        lambda line: "2013-06-27 13:35:45 +0800 | messages | " + line,
    ],
    ids=["docker-json", "elasticsearch", "cri", "shipper"],
)
def test_collector_forms_of_a_real_report(wrap) -> None:  # type: ignore[no-untyped-def]
    """The xl2tpd oops (old-task/xl2tpd-28-xfrm.log) as log collectors hand it over, wrapped mechanically."""
    log = (REAL_INDEX.parent / "old-task" / "xl2tpd-28-xfrm.log").read_text(encoding="utf-8")
    c = parse_log_text("\n".join(wrap(line) for line in log.splitlines()))[0]
    assert (c.kind, c.guilty_frame, c.task.comm, c.task.pid, c.kernel.release) == (
        "null-deref",
        "xfrm_output_resume",
        "xl2tpd",
        9113,
        "3.9.3-x86_64-linode33",
    )


_TS = re.compile(r"\[\s*\d+\.\d+\] ?")
# Texts whose other oddity is told apart by the timestamp: an editor's line numbers (recognized in front of a
# dmesg timestamp), a host-only syslog prefix (without the timestamp `host PKRU: ...` reads as another program's syslog line).
_TS_NEEDED = {
    "collectors/diagnose-tools-107-line-numbers.log",
    "collectors/tempesta-2653-ip-host-no-program.log",
}


@pytest.mark.parametrize(
    "entry",
    [e for e in ENTRIES if e["file"] not in _TS_NEEDED and _TS.search((REAL_INDEX.parent / e["file"]).read_text())],
    ids=lambda e: e["file"],
)
def test_same_answers_without_timestamps(entry: dict) -> None:
    """The same text with its dmesg timestamps removed (a mail, a serial console without printk.time) is cut at
    the same place: the arm64 `Mem abort info:` block, lockdep's sentences and prose after a WARNING stay in."""
    text = _TS.sub("", (REAL_INDEX.parent / entry["file"]).read_text(encoding="utf-8"))
    result = check_real(parse_log_text(text, entry["file"]), entry["expect"])
    assert all(result.values()), sorted(k for k, ok in result.items() if not ok)


@pytest.mark.parametrize(
    "stamp", ["[Вт апр  8 20:35:12 2025]", "[火 4月  8 20:35:12 2025]", "[mar. avril  8 20:35:12 2025]"]
)
def test_dmesg_T_dates_in_other_locales(stamp: str) -> None:
    """`dmesg -T` in a Russian, Japanese or French locale, put mechanically in place of the timestamps."""
    text = (REAL_INDEX.parent / "fault-ip" / "pf_ring-523-stack-protector.log").read_text(encoding="utf-8")
    c = parse_log_text(re.sub(r"^\[\s*\d+\.\d+\]", stamp, text, flags=re.M))[0]
    assert (c.kind, c.guilty_frame, c.task.comm, c.kernel.release) == (
        "stack-protector",
        "parse_pkt",
        "swapper/18",
        "3.10.0-1062.4.1.el7.x86_64",
    )


def test_trigger_covers_every_header_of_the_real_texts() -> None:
    """scan_binary skips byte chunks the TRIGGER prefilter does not match: every header any format matches in
    these texts must hold a trigger word, or big logs would lose those crashes."""
    from ktriage.logs.formats import FORMATS, TRIGGER
    from ktriage.logs.records import records

    missed = []
    for e in ENTRIES:
        raw = (REAL_INDEX.parent / e["file"]).read_text(encoding="utf-8").splitlines()
        for rec in records(enumerate(raw, 1)):
            if any(f.header.search(rec.text) for f in FORMATS) and not TRIGGER.search(rec.text.encode()):
                missed.append((e["file"], rec.text))
    assert not missed, missed[:5]


def test_scan_binary_reads_the_real_texts_like_parse_log_text() -> None:
    """The streaming reader (the CLI's path) gives the same first crash as the string reader on every text."""
    import io

    from ktriage.logs import scan_binary

    for e in ENTRIES:
        data = (REAL_INDEX.parent / e["file"]).read_bytes()
        a = parse_log_text(data.decode("utf-8", "replace"))
        b = list(scan_binary(io.BytesIO(data), e["file"]))
        assert [c.title for c in a] == [c.title for c in b], e["file"]
