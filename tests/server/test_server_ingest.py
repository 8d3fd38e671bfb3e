"""Real crashes posted over HTTP land in the right buckets with the right counts, and read back through the API.

Inputs: the lab's QEMU console logs (tests/fixtures/lab: real 6.1.192 kernel crashes made by lab/lab.py's
crashmod scenarios) and, when present, a CentOS 7 NFQUEUE deployment's crash text from the shared material.
Expected titles and kinds below were read by hand off the logs' own oops lines."""

from __future__ import annotations

import json
import re

import pytest
from server_inputs import lab_log, seed_texts

from realdata import SEEDS

# scenario -> (kind, title) as the oops line in the log gives them (e.g. bug-on.console.log line 232:
# "kernel BUG at .../crashmod.c" in crashmod_check_state)
LAB = {
    "bug-on": ("bug", "kernel BUG in crashmod_check_state"),
    "warn": ("warning", "WARNING in crashmod_warn"),
    "soft-lockup": ("soft-lockup", "BUG: soft lockup in crashmod_spin"),
    "uaf-poison": ("gpf", "general protection fault in crashmod_obj_dispatch"),
}


def _post(client, auth, body: bytes, host: str | None = None):  # noqa: ANN001, ANN202
    r = client.post("/api/v1/reports", content=body, headers=auth, params={"host": host} if host else None)
    assert r.status_code == 202, r.text
    return r.json()


def test_each_lab_crash_gets_its_bucket(client, auth) -> None:  # noqa: ANN001
    ids = {}
    for name, (kind, title) in LAB.items():
        reply = _post(client, auth, lab_log(name), host="lab-vm")
        assert reply["stored"] == 1
        [c] = reply["crashes"]
        assert (c["kind"], c["title"]) == (kind, title)
        assert c["bucket_new"] is True and c["duplicate"] is False
        assert c["known_bug"] is None and c["state"] == "new"  # crashmod's bugs are in no knowledge base
        ids[name] = c["bucket_id"]
    assert len(set(ids.values())) == len(LAB)  # different scenarios, different buckets

    page = client.get("/api/v1/buckets", params={"sort": "title", "order": "asc"}).json()
    assert page["total"] == len(LAB)
    assert [b["title"] for b in page["items"]] == sorted(t for _, t in LAB.values())
    for b in page["items"]:
        assert b["count"] == 1 and b["hosts"] == 1 and b["kernels"] == ["6.1.192"]


def test_same_crash_twice_is_stored_once_and_other_hosts_count(client, auth) -> None:  # noqa: ANN001
    first = _post(client, auth, lab_log("bug-on"), host="web-1")["crashes"][0]
    again = _post(client, auth, lab_log("bug-on"), host="web-1")
    assert again["stored"] == 0 and again["crashes"][0]["duplicate"] is True
    assert again["crashes"][0]["bucket_id"] == first["bucket_id"]
    other = _post(client, auth, lab_log("bug-on"), host="web-2")["crashes"][0]
    assert other["bucket_id"] == first["bucket_id"] and other["bucket_new"] is False and not other["duplicate"]

    b = client.get(f"/api/v1/buckets/{first['bucket_id']}").json()
    assert b["count"] == 2 and b["hosts"] == 2
    assert sorted(h["host"] for h in b["host_counts"]) == ["web-1", "web-2"]
    assert [k["release"] for k in b["per_kernel"]] == ["6.1.192"] and b["per_kernel"][0]["count"] == 2
    assert sum(d["count"] for d in b["per_day"]) == 2
    assert b["representative"]["title"] == "kernel BUG in crashmod_check_state"

    crashes = client.get(f"/api/v1/buckets/{first['bucket_id']}/crashes").json()
    assert crashes["total"] == 2
    assert {c["host"] for c in crashes["items"]} == {"web-1", "web-2"}
    one = client.get(f"/api/v1/crashes/{first['crash_id']}").json()
    assert one["report"]["schema"] == "ktriage.report/1"
    assert one["report"]["crashes"][0]["task"]["comm"] == "sh"  # bug-on.console.log line 234: "Comm: sh"


def test_multipart_upload_with_host_field(client, auth) -> None:  # noqa: ANN001
    r = client.post(
        "/api/v1/reports",
        files={"file": ("vmcore-dmesg.txt", lab_log("warn"), "text/plain")},
        data={"host": "db-7"},
        headers=auth,
    )
    assert r.status_code == 202, r.text
    [c] = r.json()["crashes"]
    assert c["title"] == "WARNING in crashmod_warn"
    crashes = client.get(f"/api/v1/buckets/{c['bucket_id']}/crashes").json()["items"]
    assert [x["host"] for x in crashes] == ["db-7"]


def test_report_json_is_taken_as_is(client, auth) -> None:  # noqa: ANN001
    """A machine that ran `ktriage analyze --format json` itself sends the ktriage.report/1 record."""
    from server_inputs import LAB as LAB_DIR

    from ktriage.pipeline import Options, analyze_paths
    from ktriage.render.json_out import report_dict

    report = report_dict(analyze_paths([str(LAB_DIR / "soft-lockup.console.log")], Options()))
    body = json.dumps(report).encode()
    r = client.post("/api/v1/reports", content=body, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    [c] = r.json()["crashes"]
    assert (c["kind"], c["title"]) == LAB["soft-lockup"]
    # the same crash as a raw log is the same crash
    raw = _post(client, auth, lab_log("soft-lockup"))["crashes"][0]
    assert raw["bucket_id"] == c["bucket_id"]


def test_filters(client, auth) -> None:  # noqa: ANN001
    for name in LAB:
        _post(client, auth, lab_log(name), host="lab-vm")
    _post(client, auth, lab_log("warn"), host="edge-3")

    def titles(**params: str) -> list[str]:
        return sorted(b["title"] for b in client.get("/api/v1/buckets", params=params).json()["items"])

    assert titles(kind="gpf") == ["general protection fault in crashmod_obj_dispatch"]
    assert titles(host="edge-3") == ["WARNING in crashmod_warn"]
    assert titles(q="soft lockup") == ["BUG: soft lockup in crashmod_spin"]
    assert len(titles(kernel="6.1.192")) == len(LAB)
    assert titles(kernel="5.10.0") == []
    assert len(titles(state="new")) == len(LAB) and titles(state="fixed") == []
    assert len(titles(view="new")) == len(LAB)  # all first seen now
    assert len(titles(since="1d")) == len(LAB) and titles(since="2999-01-01") == []
    by_count = client.get("/api/v1/buckets", params={"sort": "count"}).json()["items"]
    assert by_count[0]["title"] == "WARNING in crashmod_warn" and by_count[0]["count"] == 2
    paged = client.get("/api/v1/buckets", params={"limit": 2, "offset": 2, "sort": "title", "order": "asc"}).json()
    assert paged["total"] == len(LAB) and len(paged["items"]) == 2
    assert [b["title"] for b in paged["items"]] == sorted(t for _, t in LAB.values())[2:4]


@pytest.mark.skipif(not seed_texts(), reason=f"no crash texts under {SEEDS} (set KTRIAGE_SHARED)")
def test_known_bug_verdict_in_the_reply(client, auth) -> None:  # noqa: ANN001
    """A CentOS 7 (3.10.0-1160.el7) NULL dereference in nf_ct_deliver_cached_events: the knowledge base's
    nf-conntrack-clash-refetch, fixed upstream in 5.19 by 56b14ecec97f ("netfilter: conntrack: re-fetch
    conntrack after insertion") and not carried by el7 kernels through 3.10.0-1160.66.1."""
    text = next(p for p in seed_texts() if p.name.startswith("000_")).read_bytes()
    [c] = _post(client, auth, text, host="centos7-nfq")["crashes"]
    assert c["kind"] == "null-deref"
    assert c["known_bug"] == "nf-conntrack-clash-refetch"
    assert c["fixed"] is False
    assert c["fixed_in"] and "5.19" in c["fixed_in"]
    # the states: "fixed" = a fix is known and no crash ran a kernel carrying it (this el7 kernel lacks it)
    assert c["state"] == "fixed"
    b = client.get(f"/api/v1/buckets/{c['bucket_id']}").json()
    assert b["known_bug"] == "nf-conntrack-clash-refetch"
    assert [(k["release"], k["has_fix"]) for k in b["per_kernel"]] == [("3.10.0-1160.el7.x86_64", False)]
    # "fixed" beside "lacks the fix" reads as a contradiction: the label and reason say what the state means
    assert b["state_label"] == "fix available — none seen on fixed kernels"
    assert b["state_reason"].startswith("a fix for nf-conntrack-clash-refetch is recorded (fixed in ")
    assert "5.19" in b["state_reason"] and "no crash so far ran a kernel known to carry it" in b["state_reason"]
    page = client.get(f"/buckets/{c['bucket_id']}").text
    state = re.search(r'<dd id="state">.*?</dd>', page, re.S)
    assert state and "fix available — none seen on fixed kernels</span>" in state.group(0)
    listing = client.get("/").text
    assert 'class="state state-fixed" title="fix available — none seen on fixed kernels: a fix for' in listing


@pytest.mark.skipif(not seed_texts(), reason=f"no crash texts under {SEEDS} (set KTRIAGE_SHARED)")
def test_all_shared_crash_texts_are_taken(client, auth) -> None:  # noqa: ANN001
    """Every shared crash text either gives at least one bucketed crash, or a 400 saying why (one has no oops)."""
    for path in seed_texts():
        r = client.post("/api/v1/reports", content=path.read_bytes(), headers=auth)
        assert r.status_code in (202, 400), (path.name, r.text)
        if r.status_code == 202:
            assert all(c["bucket_id"] for c in r.json()["crashes"])


def test_seen_time_from_the_machine(client, auth) -> None:  # noqa: ANN001
    """A machine sending an old crash (kdump directory of last week) says when it happened."""
    for day, host in (("2026-11-20T10:00:00", "a"), ("2026-11-20T23:59:00+00:00", "b"), ("2026-11-23", "c")):
        r = client.post("/api/v1/reports", content=lab_log("warn"), headers=auth, params={"host": host, "seen": day})
        assert r.status_code == 202, r.text
    bid = r.json()["crashes"][0]["bucket_id"]
    b = client.get(f"/api/v1/buckets/{bid}").json()
    assert [(d["day"], d["count"]) for d in b["per_day"]] == [("2026-11-20", 2), ("2026-11-23", 1)]
    assert b["first_seen"].startswith("2026-11-20T10:00") and b["last_seen"].startswith("2026-11-23T00:00")
    r = client.post("/api/v1/reports", content=lab_log("warn"), headers=auth, params={"seen": "yesterday"})
    assert r.status_code == 400 and r.json()["detail"].startswith("seen:")


def test_scrubbing_server_hides_the_host_but_still_groups(db_url: str, tmp_path) -> None:  # noqa: ANN001
    """`serve --scrub`: the host a machine names is stored as a keyed hash, the same one each time."""
    from fastapi.testclient import TestClient

    from ktriage.server.app import create_app

    app = create_app(db_url, scrub=True)
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {app.state.store.create_token('m')}"}
        for log in ("warn", "bug-on"):
            r = client.post("/api/v1/reports", content=lab_log(log), headers=auth, params={"host": "db01.corp.example"})
            assert r.status_code == 202, r.text
        page = client.get("/api/v1/buckets").json()
        assert page["total"] == 2 and all(b["hosts"] == 1 for b in page["items"])
        hosts = set()
        for b in page["items"]:
            for c in client.get(f"/api/v1/buckets/{b['id']}/crashes").json()["items"]:
                hosts.add(c["host"])
        assert len(hosts) == 1 and "db01" not in next(iter(hosts))
        assert "db01" not in client.get("/").text


def test_weekly_and_monthly_counts_per_kernel(client, auth) -> None:  # noqa: ANN001
    """FAF's daily/weekly/monthly history per release: weeks start on Monday, months on the 1st.

    2026-10-30 is a Friday (week of Mon 10-26), 11-02 a Monday and 11-08 a Sunday (both week of 11-02),
    11-20 a Friday (week of 11-16)."""
    days = ("2026-10-30T12:00:00", "2026-11-02T00:30:00", "2026-11-08T23:00:00", "2026-11-20T08:00:00")
    for i, day in enumerate(days):
        r = client.post("/api/v1/reports", content=lab_log("warn"), headers=auth, params={"host": f"h{i}", "seen": day})
        assert r.status_code == 202, r.text
    bid = r.json()["crashes"][0]["bucket_id"]
    b = client.get(f"/api/v1/buckets/{bid}").json()
    weeks = [(p["release"], p["start"], p["count"]) for p in b["per_kernel_week"]]
    assert weeks == [("6.1.192", "2026-10-26", 1), ("6.1.192", "2026-11-02", 2), ("6.1.192", "2026-11-16", 1)]
    months = [(p["start"], p["count"]) for p in b["per_kernel_month"]]
    assert months == [("2026-10-01", 1), ("2026-11-01", 3)]
    assert sum(p["count"] for p in b["per_kernel_day"]) == 4 and len(b["per_kernel_day"]) == 4
    page = client.get(f"/buckets/{bid}").text
    table = re.search(r'<table id="per-kernel-periods".*?</table>', page, re.S)
    assert table
    # the last four weeks up to the last crash (10-26, 11-02, 11-09, 11-16), then Sep, Oct, Nov
    cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', table.group(0))
    assert cells == ["1", "2", "0", "1", "0", "1", "3"]
    for unit in ("day", "week", "month"):
        assert re.search(rf'<div id="per-{unit}"[^>]*><svg class="chart"[^>]*aria-label="crashes per {unit}"', page)
