"""--scrub: host names, addresses and user paths replaced by keyed hashes, consistently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fleet_inputs import LAB, LAB_ARM64

from ktriage.fleet import BucketFilter, FleetStore
from ktriage.fleet.scrub import Scrubber
from realdata import CORPUS, SEEDS

KEY = b"k" * 32


def _line(path: Path, needle: str) -> str:
    if not path.exists():
        pytest.skip(f"{path} not found (set KTRIAGE_SHARED)")
    return next(ln for ln in path.read_text(errors="replace").splitlines() if needle in ln)


def test_addresses_in_real_log_lines() -> None:
    sc = Scrubber(KEY)
    # a syzkaller VM's ICMPv6 neighbour advertisement: a MAC and a link-local IPv6 address
    icmp = _line(CORPUS / "113", "advertised our address")
    out = sc.text(icmp)
    assert "bb:bb:bb:bb:bb:01" not in out and "fe80::1aa" not in out
    assert out.startswith("[  292.763163] ICMPv6: NA: mac-") and " on syz1!" in out
    assert out == sc.text(icmp)  # the same value, the same replacement
    assert out != Scrubber(b"another key").text(icmp)
    # an ipset command quoted in a RHEL 6 NFQUEUE report
    ipset = _line(SEEDS / next(p.name for p in SEEDS.glob("003_*")), "1.1.1.1")
    assert "1.1.1.1" not in sc.text(ipset) and "timeout\xa0300" in sc.text(ipset)  # (the page used no-break spaces)


@pytest.mark.parametrize(
    "kernel_text",
    [
        "[  292.763163] CPU: 1 PID: 5027 Comm: Verdict3 Tainted: G OE 3.10.0-1160.el7.x86_64 #1",
        "RIP: 0010:nf_ct_deliver_cached_events+0x2d/0x110 [nf_conntrack]",
        "pci 0000:00:1f.2: [8086:2922] type 00 class 0x010601",
        "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014",
        "RSP: 0018:ffffa5a0c0013e58 EFLAGS: 00010246 ORIG_RAX: ffffffffffffff13",
        "Dec  5 12:34:56 INFO: task kworker/0:1:47 blocked for more than 120 seconds.",
    ],
)
def test_kernel_text_is_left_alone(kernel_text: str) -> None:
    assert Scrubber(KEY).text(kernel_text) == kernel_text


def test_ingest_with_scrub(db_url: str, tmp_path: Path) -> None:
    """One host's panics from two boots, read from a user's home directory, stored scrubbed: the host still
    counts once, and neither the host name nor the user name is anywhere in the database."""
    home = tmp_path / "home" / "alice" / "crashes"
    home.mkdir(parents=True)
    shutil.copy(LAB / "panic.console.log", home / "db01.example.com-x86.log")
    shutil.copy(LAB_ARM64 / "panic.console.log", home / "db01.example.com-arm.log")
    st = FleetStore.open(db_url, scrub_key=KEY)
    try:
        s = st.ingest_paths([str(home)], host="db01.example.com", scrub=True)
        assert len(s.results) == 2 and len({r.bucket_id for r in s.results}) == 1
        d = st.get_bucket(s.results[0].bucket_id)
        assert d is not None and d.summary.hosts == 1 and d.summary.count == 2
        assert d.hosts == [(Scrubber(KEY).host("db01.example.com"), 2)]
        assert st.list_buckets(BucketFilter(host=Scrubber(KEY).host("db01.example.com")))[1] == 1
        from sqlalchemy import text

        with st.engine.connect() as c:
            dump = json.dumps(
                [list(r) for t in ("crash", "crash_report", "bucket") for r in c.execute(text(f"SELECT * FROM {t}"))],
                default=str,
            )
        assert "db01" not in dump and "alice" not in dump
        assert "panic.console.log" not in dump and "kernel panic" in dump  # the crash itself is intact
        # the same crash sent again (scrubbed the same way) is a duplicate
        again = st.ingest_paths([str(home / "db01.example.com-x86.log")], host="db01.example.com", scrub=True)
        assert [r.duplicate for r in again.results] == [True]
    finally:
        st.close()
