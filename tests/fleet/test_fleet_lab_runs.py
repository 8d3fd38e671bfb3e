"""The fleet over the QEMU lab's own runs (KTRIAGE_LAB=run, after `python3 lab/lab.py all`): a second boot
of every scenario next to the boots kept in tests/fixtures/lab, and the kdump vmcores of those boots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fleet_inputs import LAB

from ktriage.fleet import BucketFilter, FleetStore

pytestmark = pytest.mark.skipif(
    os.environ.get("KTRIAGE_LAB") != "run", reason="lab runs are used with KTRIAGE_LAB=run (after lab/lab.py all)"
)


def _runs() -> dict[str, Path]:
    """Scenario -> run directory of the lab's x86_64 build (console.log, vmcore, meta.json)."""
    cache = Path(os.environ.get("KTRIAGE_LAB_CACHE") or Path.home() / ".cache" / "ktriage-lab")
    out: dict[str, Path] = {}
    for meta in sorted(cache.glob("runs/*/*/meta.json")):
        m = json.loads(meta.read_text())
        if m.get("ok") and (meta.parent / "console.log").exists() and "arm64" not in str(m.get("build")):
            out[m["scenario"]] = meta.parent
    if not out:
        pytest.skip(f"no lab runs under {cache}/runs: run `python3 lab/lab.py all`")
    return out


def test_second_boots_join_their_scenarios(store: FleetStore) -> None:
    runs = _runs()
    fixtures = {p.name.removesuffix(".console.log"): p for p in LAB.glob("*.console.log")}
    both = sorted(set(fixtures) & set(runs))
    assert len(both) >= 10
    first = {s: store.ingest_paths([str(fixtures[s])], host="labvm").results for s in both}
    second = {s: store.ingest_paths([str(runs[s] / "console.log")], host="labvm").results for s in both}
    for s in both:
        # a boot whose console log is the fixture byte for byte is the same boot (the fixture was copied
        # from it); any other is a second boot of the scenario: same bucket, one more crash
        same_boot = (runs[s] / "console.log").read_bytes() == fixtures[s].read_bytes()
        assert [r.bucket_id for r in second[s]] == [r.bucket_id for r in first[s]], s
        assert [r.duplicate for r in second[s]] == [same_boot] * len(first[s]), s
        d = store.get_bucket(first[s][0].bucket_id)
        assert d is not None and d.summary.count == (1 if same_boot else 2) * len(first[s]), s
    assert len({r.bucket_id for s in both for r in first[s]}) == len(both)  # scenarios never share a bucket

    # the kdump vmcore of the second boot is the crash its console log already told: stored once
    for s in ("warn", "null-member"):
        if s in runs and (runs[s] / "vmcore").exists():
            again = store.ingest_paths([str(runs[s] / "vmcore")], host="labvm")
            assert [(r.duplicate, r.bucket_id) for r in again.results] == [(True, r.bucket_id) for r in second[s]], s


def test_race_member_split_from_null_member(store: FleetStore) -> None:
    """race-member and null-member fault at the same instruction, reached from the same callers (checked by
    hand: crashmod_read_rx_count <- crashmod_trigger <- crashmod_write): the log cannot tell them apart and
    ktriage buckets them together; a person splits them, and the split outlives a rebucket."""
    runs = _runs()
    if "race-member" not in runs or "null-member" not in runs:
        pytest.skip("lab runs of race-member and null-member needed")
    nm = store.ingest_paths([str(runs["null-member"] / "console.log")], host="a").results
    rm = store.ingest_paths([str(runs["race-member"] / "console.log")], host="b").results
    assert nm[0].bucket_id == rm[0].bucket_id
    new = store.split(nm[0].bucket_id, [rm[0].crash_id], who="lab", why="a race, not a missing member")
    store.rebucket()
    assert store.get_crash(rm[0].crash_id).summary.bucket_id == new  # type: ignore[union-attr]
    assert store.list_buckets(BucketFilter())[1] == 2
