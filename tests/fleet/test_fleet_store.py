"""The fleet store on real inputs, on SQLite and PostgreSQL: grouping, idempotency, counts, states,
merge/split/undo, rebucket, bounded reports, tokens."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fleet_inputs import LAB, LAB_ARM64, analyzed

from ktriage.fleet import BucketFilter, FleetError, FleetStore
from ktriage.fleet.queries import probably_fixed_since
from realdata import SEEDS, seed


def _action(path: Path) -> str:
    """The lab scenario a console log is the boot of, from the kernel command line it printed."""
    m = re.search(r"lab\.action=([\w-]+)", path.read_text(errors="replace"))
    assert m, path
    return m.group(1)


def _by_file(results: list, report: dict) -> dict[str, str]:
    return {c["source"]["path"]: r.bucket_id for c, r in zip(report["crashes"], results, strict=True)}


def test_lab_scenarios_group_and_count(store: FleetStore) -> None:
    x86, arm = analyzed(LAB), analyzed(LAB_ARM64)
    got_x86 = _by_file(store.ingest_report(x86, host="lab-x86"), x86)
    got_arm = _by_file(store.ingest_report(arm, host="lab-arm64"), arm)
    # 12 scenarios, one boot each per machine: 12 buckets on x86, one per scenario
    assert len(got_x86) == 12 and len(set(got_x86.values())) == 12
    assert {_action(Path(p)) for p in got_x86} == {_action(Path(p)) for p in got_arm}
    # a scenario whose crash does not depend on the architecture's entry code is one bucket over both boots
    # (checked by hand: same title, same guilty function, same kind; the arm64 hung task, panic, soft lockup
    # and list corruption stacks name the same crashmod callers)
    same = {"hung-task", "panic", "soft-lockup", "list-corruption"}
    for scen in same:
        b = got_x86[str(LAB / f"{scen}.console.log")]
        assert b == got_arm[str(LAB_ARM64 / f"{scen}.console.log")], scen
        d = store.get_bucket(b)
        assert d is not None and d.summary.count == 2 and d.summary.hosts == 2
        assert dict(d.hosts) == {"lab-x86": 1, "lab-arm64": 1}
        assert [(k.release, k.count) for k in d.per_kernel] == [("6.1.192", 2)]
    # different scenarios never share a bucket
    scen_of: dict[str, set[str]] = {}
    for path, b in [*got_x86.items(), *got_arm.items()]:
        scen_of.setdefault(b, set()).add(_action(Path(path)))
    assert all(len(s) == 1 for s in scen_of.values()), scen_of
    total = sum(b.count for b in store.list_buckets(BucketFilter(), limit=100)[0])
    assert total == 24


def test_same_crash_twice_is_stored_once(store: FleetStore, tmp_path: Path) -> None:
    first = store.ingest_paths([str(LAB / "warn.console.log"), str(LAB / "panic.console.log")], host="h1")
    assert [r.duplicate for r in first.results] == [False, False]
    again = store.ingest_paths([str(LAB / "warn.console.log")], host="h1")
    assert [r.duplicate for r in again.results] == [True]
    assert again.results[0].crash_id == first.results[0].crash_id
    # overlapping logs of one machine: yesterday's file and today's, which repeats the panic boot
    both = tmp_path / "messages"
    both.write_bytes((LAB / "bug-on.console.log").read_bytes() + (LAB / "panic.console.log").read_bytes())
    over = store.ingest_paths([str(both)], host="h1")
    assert sorted(r.duplicate for r in over.results) == [False, True]
    # the same crash as a report JSON (what `ktriage analyze --format json` wrote) is the same crash
    js = tmp_path / "warn.json"
    js.write_text(json.dumps(analyzed(LAB / "warn.console.log")))
    as_json = store.ingest_paths([str(js)], host="h1")
    assert [(r.duplicate, r.crash_id) for r in as_json.results] == [(True, first.results[0].crash_id)]
    # another machine crashing the same way is another crash of the same bucket
    other = store.ingest_paths([str(LAB / "warn.console.log")], host="h2")
    assert [(r.duplicate, r.bucket_id) for r in other.results] == [(False, first.results[0].bucket_id)]
    assert store.get_bucket(first.results[0].bucket_id).summary.count == 2  # type: ignore[union-attr]


def test_two_boots_printing_the_same_oops_are_two_crashes(store: FleetStore, tmp_path: Path) -> None:
    """A machine without KASLR can print one oops word for word on two boots; the log's timestamps tell the
    boots apart. The second boot is simulated: the lab's warn boot with every timestamp 0.5 s later."""
    text = (LAB / "warn.console.log").read_text()
    later = re.sub(r"\[\s*(\d+)\.(\d{6})\]", lambda m: f"[{float(m.group(0)[1:-1]) + 0.5:12.6f}]", text)
    assert later != text
    (tmp_path / "boot2.log").write_text(later)
    a = store.ingest_paths([str(LAB / "warn.console.log")], host="same")
    b = store.ingest_paths([str(tmp_path / "boot2.log")], host="same")
    assert [r.duplicate for r in b.results] == [False] and b.results[0].bucket_id == a.results[0].bucket_id
    assert store.get_bucket(a.results[0].bucket_id).summary.count == 2  # type: ignore[union-attr]


def test_unreadable_inputs_are_listed(store: FleetStore, tmp_path: Path) -> None:
    (tmp_path / "core.bin").write_bytes(bytes(range(256)) * 64)
    s = store.ingest_paths([str(tmp_path / "core.bin"), str(tmp_path / "missing"), str(LAB / "warn.console.log")])
    assert len(s.results) == 1 and len(s.errors) == 2
    assert any("binary data" in e for e in s.errors) and any("missing" in e for e in s.errors)
    from ktriage.inputs import InputError

    with pytest.raises(InputError, match="binary data"):
        store.ingest_bytes(bytes(range(256)) * 64, "x.bin")
    with pytest.raises(InputError, match="malformed JSON"):
        store.ingest_bytes(b'{"schema": "ktriage.report/1", "crashes": [', "r.json")
    with pytest.raises(InputError, match="malformed ktriage.report/1 report at the document: 'inputs'"):
        store.ingest_bytes(b'{"schema": "ktriage.report/1", "crashes": [{"title": "t"}]}', "r.json")
    # a real report with a field of the wrong type or an oversized bucket id: refused, nothing stored
    good = analyzed(LAB / "warn.console.log")
    for path, value in (("release", 5), ("bucket", "kt1-" + "f" * 1000), ("frames", ["x"])):
        bad = json.loads(json.dumps(good))
        c = bad["crashes"][0]
        (c["kernel"] if path == "release" else c)[path] = value
        with pytest.raises(InputError, match="malformed ktriage.report/1 report at crashes/0/"):
            store.ingest_bytes(json.dumps(bad).encode(), "r.json")
        with pytest.raises(InputError, match="malformed"):
            store.ingest_report(bad)
    assert store.list_buckets(BucketFilter())[1] == 1  # only the warn crash read from the log above


def test_seed_known_bug_state_and_regression(store: FleetStore) -> None:
    if not SEEDS.is_dir():
        pytest.skip(f"real crash texts not found under {SEEDS}")
    # a CentOS 7 NFQUEUE deployment: nf_ct_deliver_cached_events on a NULL conntrack extension
    r000 = store.ingest_bytes(seed("000").read_bytes(), "vmcore-dmesg.txt", host="centos7-a")
    assert [(r.known_bug, r.fixed, r.state) for r in r000] == [("nf-conntrack-clash-refetch", False, "fixed")]
    d = store.get_bucket(r000[0].bucket_id)
    assert (
        d is not None and d.summary.known_bug == "nf-conntrack-clash-refetch" and "5.19" in (d.summary.fixed_in or "")
    )
    assert [(k.release, k.has_fix) for k in d.per_kernel] == [("3.10.0-1160.el7.x86_64", False)]

    # the RHEL 6 NFQUEUE GSO crash (seed 003): known bug fixed upstream in 3.18
    text = seed("003").read_text(errors="replace")
    r003 = store.ingest_bytes(text.encode(), "messages", host="el6-a")
    assert [(r.known_bug, r.state) for r in r003] == [("nf-queue-gso-segment-null", "fixed")]
    # The same crash printed by a vanilla 4.4 kernel - which carries the 3.18 fix - from another machine:
    # the bucket regresses, a new generation, in the history; never folded in silently.
    again = store.ingest_bytes(text.replace("2.6.32-358.el6.x86_64", "4.4.0").encode(), "messages", host="v44")
    assert [(r.bucket_id, r.fixed, r.state, r.duplicate) for r in again] == [
        (r003[0].bucket_id, True, "regressed", False)
    ]
    d = store.get_bucket(r003[0].bucket_id)
    assert d is not None and d.summary.state == "regressed" and d.generation == 2
    states = [h for h in d.history if h["action"] == "state"]
    assert states and states[-1]["data"]["from"] == "fixed" and states[-1]["data"]["to"] == "regressed"
    assert {k.release: k.has_fix for k in d.per_kernel} == {"2.6.32-358.el6.x86_64": False, "4.4.0": True}
    flt = store.list_buckets(BucketFilter(state="regressed"))
    assert [b.id for b in flt[0]] == [r003[0].bucket_id]


def test_merge_split_undo(store: FleetStore) -> None:
    res = store.ingest_report(analyzed(LAB, LAB_ARM64), host="m")
    warn_x86, warn_arm = (r.bucket_id for r in res if r.title == "WARNING in crashmod_warn")
    assert warn_x86 != warn_arm
    act = store.merge(warn_x86, warn_arm, who="alice", why="same WARN_ON in crashmod_warn on both arches")
    d = store.get_bucket(warn_arm)  # the merged id still resolves, to the bucket it went into
    assert d is not None and d.summary.id == warn_x86 and d.summary.count == 2
    assert set(d.signatures) == {warn_x86, warn_arm}
    merge_entry = next(h for h in d.history if h["id"] == act)
    assert (merge_entry["who"], merge_entry["action"]) == ("alice", "merge") and "arches" in merge_entry["why"]
    # a new crash under the merged signature joins the merged bucket
    more = store.ingest_report(analyzed(LAB_ARM64 / "warn.console.log"), host="m2")
    assert more[0].bucket_id == warn_x86
    ids = {b.id for b in store.list_buckets(BucketFilter(), limit=100)[0]}
    assert warn_arm not in ids and warn_x86 in ids

    crashes, total = store.bucket_crashes(warn_x86)
    assert total == 3
    arm_ids = [c.id for c in crashes if c.host in ("m", "m2") and c.id != res[0].crash_id][:1]
    new = store.split(warn_x86, arm_ids, who="bob", why="looks different")
    assert store.get_bucket(new).summary.count == 1  # type: ignore[union-attr]
    assert store.get_bucket(warn_x86).summary.count == 2  # type: ignore[union-attr]
    with pytest.raises(FleetError, match="not in bucket"):
        store.split(warn_x86, [10**6], who="bob", why="x")

    store.undo(act, who="alice")
    a, b = store.get_bucket(warn_x86), store.get_bucket(warn_arm)
    assert a is not None and b is not None and b.summary.id == warn_arm
    assert a.summary.count + b.summary.count + store.get_bucket(new).summary.count == 3  # type: ignore[union-attr]
    assert warn_arm in {x.id for x in store.list_buckets(BucketFilter(), limit=100)[0]}
    with pytest.raises(FleetError, match="already undone"):
        store.undo(act, who="alice")


def test_rebucket_keeps_counts_history_and_merges(store: FleetStore) -> None:
    store.ingest_report(analyzed(LAB, LAB_ARM64), host="r")
    before = {b.id: b.count for b in store.list_buckets(BucketFilter(), limit=100)[0]}
    warn = sorted(b for b in before if store.get_bucket(b).summary.title == "WARNING in crashmod_warn")  # type: ignore[union-attr]
    act = store.merge(warn[0], warn[1], who="alice", why="one bug")
    r = store.rebucket()
    assert r.crashes == 24 and r.merged == [] and r.without_report == 0
    after = {b.id: b.count for b in store.list_buckets(BucketFilter(), limit=100)[0]}
    assert sum(after.values()) == 24 and after[warn[0]] == 2 and warn[1] not in after
    hist = store.get_bucket(warn[0]).history  # type: ignore[union-attr]
    assert any(h["id"] == act and h["action"] == "merge" for h in hist)


def test_rebucket_after_an_id_scheme_change_merges_old_and_new(store: FleetStore) -> None:
    """Reports stored under an older id scheme (here: the bucket ids replaced as an old ktriage would have
    written them): rebucket adds today's id to the same bucket, and two buckets the new ids unify merge."""
    rep = analyzed(LAB / "warn.console.log", LAB / "panic.console.log")
    today = [c["bucket"] for c in rep["crashes"]]
    rep["crashes"][0]["bucket"] = "kt1-00000000000000a1"
    rep["crashes"][1]["bucket"] = "kt1-00000000000000b2"
    store.ingest_report(rep, host="old")
    store.ingest_report(analyzed(LAB / "warn.console.log"), host="new")  # today's id: a bucket of its own
    assert store.list_buckets(BucketFilter())[1] == 3
    r = store.rebucket()
    assert r.signatures_added == 1  # the panic's new id joins its old bucket
    assert r.merged == [(today[0], "kt1-00000000000000a1")]
    d = store.get_bucket(today[0])
    assert d is not None and d.summary.id == "kt1-00000000000000a1" and d.summary.count == 2
    assert set(d.signatures) == {"kt1-00000000000000a1", today[0]}
    p = store.get_bucket(today[1])
    assert p is not None and p.summary.id == "kt1-00000000000000b2" and p.summary.count == 1


def test_reports_are_bounded_counts_are_not(db_url: str) -> None:
    st = FleetStore.open(db_url, max_reports_per_bucket=3)
    try:
        data = (LAB / "panic.console.log").read_bytes()
        ids = [st.ingest_bytes(data, "console.log", host=f"h{i}")[0].crash_id for i in range(6)]
        b = st.get_bucket(st.get_crash(ids[0]).summary.bucket_id)  # type: ignore[union-attr]
        assert b is not None and b.summary.count == 6 and b.summary.hosts == 6
        kept = [i for i in ids if st.get_crash(i).report is not None]  # type: ignore[union-attr]
        assert kept == [ids[0], ids[4], ids[5]]  # the first and the most recent
        assert st.get_crash(ids[1]).summary.report_kept is False  # type: ignore[union-attr]
        assert (
            b.representative is not None
            and b.representative["title"] == "kernel panic: crashmod: explicit panic requested"
        )
    finally:
        st.close()


def test_filters_sorts_and_growth(store: FleetStore) -> None:
    now = datetime.now(timezone.utc)
    store.ingest_bytes((LAB / "warn.console.log").read_bytes(), "a", host="old", seen=now - timedelta(days=10))
    for i in range(3):
        store.ingest_bytes((LAB / "panic.console.log").read_bytes(), "a", host=f"n{i}", seen=now - timedelta(hours=i))
    rows, total = store.list_buckets(BucketFilter(), sort="count")
    assert total == 2 and [b.count for b in rows] == [3, 1]
    assert [b.growth for b in rows] == [3, -1]
    assert [b.title for b in store.list_buckets(BucketFilter(growing=True))[0]] == [rows[0].title]
    assert store.list_buckets(BucketFilter(kind="warning"))[1] == 1
    assert store.list_buckets(BucketFilter(host="n1"))[1] == 1
    assert store.list_buckets(BucketFilter(kernel="6.1.192"))[1] == 2
    assert store.list_buckets(BucketFilter(kernel="5.10.0"))[1] == 0
    assert store.list_buckets(BucketFilter(q="PANIC"))[1] == 1
    assert store.list_buckets(BucketFilter(since=now - timedelta(days=2)))[1] == 1
    assert store.list_buckets(BucketFilter(new_since=now - timedelta(days=2)))[1] == 1
    d = store.get_bucket(rows[0].id)
    assert d is not None and sum(n for _, n in d.per_day) == 3


def test_tokens(store: FleetStore) -> None:
    secret = store.create_token("rack-7")
    assert store.check_token(secret) == "rack-7"
    assert store.check_token(secret + "x") is None and store.check_token("") is None
    with pytest.raises(FleetError):
        store.create_token("rack-7")
    store.revoke_token("rack-7")
    assert store.check_token(secret) is None
    # the secret is not in the database, only its hash
    from sqlalchemy import text

    with store.engine.connect() as c:
        dump = json.dumps([list(r) for r in c.execute(text("SELECT * FROM token"))], default=str)
    assert secret not in dump


def test_probably_fixed_since() -> None:
    # el7 builds: the bucket crashed on 1160.el7 and 1160.6.1.el7; the fleet also runs 1160.25.1.el7 and
    # 1160.45.1.el7 (they crash with other bugs) -> probably fixed since the oldest newer build
    mine = ["3.10.0-1160.el7.x86_64", "3.10.0-1160.6.1.el7.x86_64"]
    fleet = [*mine, "3.10.0-1160.45.1.el7.x86_64", "3.10.0-1160.25.1.el7.x86_64", "4.18.0-305.el8.x86_64", "5.10.120"]
    got = probably_fixed_since(mine, fleet)
    assert got == {r: "3.10.0-1160.25.1.el7.x86_64" for r in mine}
    # upstream stable: 5.10.120 crashed, 5.10.130 runs and does not -> since 5.10.130; 6.1 has nothing newer
    assert probably_fixed_since(["5.10.120", "6.1.192"], ["5.10.120", "6.1.192", "5.10.130", "5.15.1"]) == {
        "5.10.120": "5.10.130"
    }


def test_long_names_fit_every_database(store: FleetStore) -> None:
    """PostgreSQL refuses a value longer than its column where SQLite keeps it: a long token name (the
    origin), host or user name must be cut, not turn an ingest into a database error."""
    r = store.ingest_report(analyzed(LAB / "warn.console.log"), host="h" * 300, origin="api:" + "n" * 300)
    r2 = store.ingest_report(analyzed(LAB_ARM64 / "warn.console.log"), host="h" * 300, origin="api:" + "n" * 300)
    act = store.merge(r[0].bucket_id, r2[0].bucket_id, who="w" * 300, why="y" * 5000)
    d = store.get_bucket(r[0].bucket_id)
    assert d is not None and d.summary.count == 2 and d.hosts == [("h" * 255, 2)]
    assert next(h for h in d.history if h["id"] == act)["who"] == "w" * 200


RULE = """\
id: site-crashmod-warn
title: "crashmod: the lab module's deliberate WARN_ON in crashmod_warn"
status: reported
subsystem: lab
summary: A site's own rule for its out-of-tree test module (crashmod, ktriage's QEMU lab).
signature:
  kinds: [warning]
  guilty: [crashmod_warn]
  frames: []
  any_frames: []
  related_events: []
  title_regex: null
  kernel: {introduced: null, fixed: "6.2"}
fix:
  mainline: "6.2"
  stable: STABLE
distros: []
cve: []
references: [lab/README.md]
workarounds:
  - {title: "Do not load crashmod", how: "modprobe -r crashmod", cost: "no lab crashes", reboot: false}
probe: {bpftrace: null, systemtap: null}
examples: []
negative_examples: []
"""


def test_rebucket_after_a_knowledge_base_change(store: FleetStore, tmp_path: Path) -> None:
    """A bucket stored before its rule existed becomes `fixed` when a rule recording the fix appears (its
    6.1.192 kernel lacks the 6.2 fix); when the rule learns that 6.1.150 got a stable backport, 6.1.192
    carries the fix and the bucket regresses - each change recorded in its history."""
    r = store.ingest_report(analyzed(LAB / "warn.console.log"), host="k")
    assert r[0].state == "new" and r[0].known_bug is None
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "site-crashmod-warn.yaml").write_text(RULE.replace("STABLE", "[]"))
    out = store.rebucket(kb_dirs=[str(kb)])
    assert out.notes == [] and out.state_changes == [(r[0].bucket_id, "new", "fixed")]
    d = store.get_bucket(r[0].bucket_id)
    assert d is not None and d.summary.known_bug == "site-crashmod-warn" and d.summary.fixed_in == "6.2"
    assert d.workaround == "modprobe -r crashmod" and [k.has_fix for k in d.per_kernel] == [False]
    crash = store.get_crash(r[0].crash_id)
    assert crash is not None and crash.report is not None
    assert [m["id"] for m in crash.report["crashes"][0]["known_bugs"]] == ["site-crashmod-warn"]

    (kb / "site-crashmod-warn.yaml").write_text(RULE.replace("STABLE", '["6.1.150"]'))
    out = store.rebucket(kb_dirs=[str(kb)])
    assert out.state_changes == [(r[0].bucket_id, "fixed", "regressed")]
    d = store.get_bucket(r[0].bucket_id)
    assert d is not None and d.summary.state == "regressed" and d.generation == 2
    assert [k.has_fix for k in d.per_kernel] == [True]
    assert [(h["data"]["from"], h["data"]["to"]) for h in d.history if h["action"] == "state"] == [
        ("new", "fixed"),
        ("fixed", "regressed"),
    ]


def test_submission_name_with_quotes(store: FleetStore) -> None:
    """The file name a machine sends becomes the stored source path, quotes and backslashes included."""
    name = 'con"sole\\1.log'
    r = store.ingest_bytes((LAB / "warn.console.log").read_bytes(), name)
    crash = store.get_crash(r[0].crash_id)
    assert crash is not None and crash.report is not None
    assert crash.report["crashes"][0]["source"]["path"] == name and crash.report["inputs"][0]["path"] == name
