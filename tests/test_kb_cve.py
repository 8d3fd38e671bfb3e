"""The generated CVE tier: import of the kernel CNA's records, fixed-in on any kernel, the shipped data.

Fixtures in tests/fixtures/cve/ are four real records of the snapshot (vulns.git d9dda40c8f21):
CVE-2022-49561 (the conntrack clash fix 56b14ecec97f; its record quotes no crash), CVE-2021-47103 (quotes
a syzbot KASAN report), CVE-2020-36776 (brought into 4.14.y by a backport, never fixed there) and
CVE-2025-39806 (brought into 5.15.y/6.1.y/6.6.y by backports and fixed there later; into 6.10.y, never fixed).
Expected values were read by hand from the records' `affected` blocks and `.dyad` files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ktriage.cli import main
from ktriage.kb.cve_fixed import cve_verdict, unfixed_branches
from ktriage.kb.cve_import import import_records, parse_record, write_db
from ktriage.kb.cve_store import CveStore
from ktriage.model import Kernel

FIX = Path(__file__).parent / "fixtures" / "cve"
SNAPSHOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kernel-vulns"


def _entry(cve: str) -> dict:
    return parse_record((FIX / f"{cve}.json").read_bytes(), (FIX / f"{cve}.dyad").read_text())


def test_record_conntrack_clash():
    e = _entry("CVE-2022-49561")
    assert e["subject"] == "netfilter: conntrack: re-fetch conntrack after insertion"
    assert e["commit"] == "56b14ecec97f" and e["mainline"] == "5.19" and e["introduced"] == ["4.7"]
    # record: 4.14.282, 4.19.246, 5.4.197, 5.10.120, 5.15.45, 5.17.13, 5.18.2; dyad: 5.10.120 = 91a36ec160ec
    assert [v[0] for v in e["stable"].values()] == [
        "4.14.282",
        "4.19.246",
        "5.4.197",
        "5.10.120",
        "5.15.45",
        "5.17.13",
        "5.18.2",
    ]
    assert e["stable"]["5.10"] == ["5.10.120", "91a36ec160ec"]
    assert "sigs" not in e  # the description quotes no crash


def test_record_with_quoted_kasan_report():
    e = _entry("CVE-2021-47103")
    (sig,) = e["sigs"]
    assert sig["kind"] == "kasan"
    assert sig["title"] == "KASAN: use-after-free Read in dst_check"
    assert sig["guilty"] == "dst_check"
    assert sig["frames"][:3] == ["dst_check", "tcp_v4_early_demux", "ip_rcv_finish_core"]
    assert "kasan_report" not in " ".join(sig["frames"])  # the report's own machinery is not the signature


def test_backport_brought_bug_never_fixed():
    e = _entry("CVE-2020-36776")
    assert e["unfixed"]["4.14"] == "4.14.189"  # {version: 4.14.189, lessThan: 4.15, affected}
    v = cve_verdict(e, Kernel(release="4.14.200"))
    assert v.answer == "no" and "never got the fix" in v.reason
    assert cve_verdict(e, Kernel(release="4.14.100")).affected is False
    assert "4.14" in unfixed_branches(e, ["4.14", "5.10"])


@pytest.mark.parametrize(
    "release,answer",
    [
        ("5.15.167", "unknown"),
        ("5.15.168", "no"),
        ("5.15.190", "no"),
        ("5.15.191", "yes"),
        ("6.10.20", "no"),
        ("6.11.3", "no"),
        ("6.12.44", "no"),
        ("6.12.45", "yes"),
        ("6.17", "yes"),
    ],
)
def test_backported_then_fixed(release, answer):
    """CVE-2025-39806's record: {5.15.168 lessThan 5.15.191} affected, {6.10.11 lessThan 6.11} affected (never
    fixed on 6.10.y), introduced 6.11, fixed 6.12.45 / 6.16.5 / 6.17."""
    e = _entry("CVE-2025-39806")
    assert e["backported"] == {"5.15": "5.15.168", "6.1": "6.1.111", "6.6": "6.6.52"} and e["unfixed"] == {
        "6.10": "6.10.11"
    }
    assert cve_verdict(e, Kernel(release=release)).answer == answer
    assert unfixed_branches(e, ["5.15", "6.1", "6.10", "6.11", "6.12", "6.13", "6.16"]) == ["6.10", "6.11", "6.13"]


@pytest.mark.parametrize(
    "release,answer,words",
    [
        ("5.10.119", "no", "5.10.120"),
        ("5.10.120", "yes", "5.10.120"),
        ("5.19", "yes", "5.19"),
        ("4.9.300", "no", "never got the fix"),
        ("4.6.7", "unknown", "predates"),
        ("3.10.0-1160.el7.x86_64", "unknown", "changelog"),
    ],
)
def test_fixed_in(release, answer, words):
    v = cve_verdict(_entry("CVE-2022-49561"), Kernel(release=release))
    assert v.answer == answer and words in v.reason


def _tree(tmp_path: Path) -> Path:
    pub = tmp_path / "cve" / "published" / "2022"
    pub.mkdir(parents=True)
    for f in FIX.iterdir():
        shutil.copy(f, pub / f.name)
    (pub / "CVE-2022-99991.json").write_text('{"cveMetadata": {"cveId": "CVE-2022-99991"')  # cut short
    (pub / "CVE-2022-99992.json").write_text('{"cveMetadata": {"cveId": "CVE-2022-99992"}, "containers": {}}')
    return tmp_path


def test_bad_records_skipped_with_reason(tmp_path):
    res = import_records(str(_tree(tmp_path)))
    assert [e["id"] for e in res.entries] == ["CVE-2020-36776", "CVE-2021-47103", "CVE-2022-49561", "CVE-2025-39806"]
    assert res.skipped["malformed JSON (JSONDecodeError)"] == 1
    assert res.skipped["missing field containers.cna"] == 1


def test_import_cli_and_store(tmp_path):
    out = tmp_path / "kb.jsonl.gz"
    r = CliRunner().invoke(main, ["kb", "import-cve", str(_tree(tmp_path)), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "4 CVE records imported (2 quote a crash" in r.output and "2 skipped" in r.output
    st = CveStore(out, "test")
    assert st.get("cve-2022-49561")["mainline"] == "5.19"
    assert [e["id"] for e in st.with_functions(["tcp_v4_early_demux"])] == ["CVE-2021-47103"]


def test_import_cli_bad_path(tmp_path):
    r = CliRunner().invoke(main, ["kb", "import-cve", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such file" in r.output and "Traceback" not in r.output


def test_cli_fixed_on_shipped_tier():
    r = CliRunner().invoke(main, ["kb", "fixed", "CVE-2022-49561", "--kernel", "5.10.119"])
    assert r.exit_code == 1 and "NOT fixed" in r.output and "5.10.120" in r.output
    r = CliRunner().invoke(main, ["kb", "fixed", "CVE-2022-49561", "--kernel", "5.10.120", "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.output)["fixed"] == "yes"
    r = CliRunner().invoke(main, ["kb", "fixed", "CVE-1999-0001", "--kernel", "5.10.120"])
    assert r.exit_code == 1 and "not in the CVE knowledge base" in r.output


def test_shipped_tier_header():
    from ktriage.kb.cve_store import packaged_data_path

    p = packaged_data_path()
    assert p is not None and p.stat().st_size < 4 << 20
    assert (p.parent / "CVE-TERMS-OF-USE.txt").read_text().count("MITRE") >= 2
    h = CveStore(p, "packaged").header()
    assert h["counts"]["imported"] == 14626 and h["source"].startswith("d9dda40c8f21")


@pytest.mark.skipif(not SNAPSHOT.is_dir(), reason="kernel-vulns snapshot not in ../shared/data")
def test_snapshot_counts(tmp_path):
    """The whole snapshot imports with no record skipped (README's counts)."""
    res = import_records(str(next(SNAPSHOT.glob("*.tar.xz"))))
    c = res.counts()
    assert c["imported"] == 14626 and c["skipped"] == 0
    assert 3000 < c["with_signature"] < 4500  # ~30% of descriptions quote a crash (README of the snapshot)
    assert c["with_versions"] > 14000
    write_db(res, str(tmp_path / "x.gz"))


# ------------------------------------------------------------------------------------ matching

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "syzkaller"


def _fixture_store(tmp_path: Path) -> CveStore:
    out = tmp_path / "kb.jsonl.gz"
    write_db(import_records(str(_tree(tmp_path))), str(out))
    return CveStore(out, "test")


def _quoted_crash(cve: str, release: str | None = None):
    from ktriage.logs import parse_log_text

    desc = json.loads((FIX / f"{cve}.json").read_text())["containers"]["cna"]["descriptions"][0]["value"]
    (c,) = parse_log_text(desc)
    if release:
        c = c.replace(kernel=Kernel(release=release))
    return c


def test_candidate_from_quoted_crash(tmp_path):
    from ktriage.kb.cve_match import match_cve

    st = _fixture_store(tmp_path)
    # the record's own syzbot report, on a 5.15.11 kernel: in the window (fixed in 5.15.12 on 5.15.y)
    (cand,) = match_cve(_quoted_crash("CVE-2021-47103", "5.15.11"), st=st)
    assert cand.cve == "CVE-2021-47103" and cand.verdict.answer == "no"
    assert cand.score > 0.9 and "guilty dst_check" in cand.why
    d = cand.to_dict()
    assert d["tier"] == "cve" and d["verified"] is False and "5.15.12" in d["fixed_reason"]
    # 5.15.12 has the fix: outside the window, so not a candidate (kept only on request, scored lower)
    assert match_cve(_quoted_crash("CVE-2021-47103", "5.15.12"), st=st) == []
    (out,) = match_cve(_quoted_crash("CVE-2021-47103", "5.15.12"), st=st, keep_outside_window=True)
    assert out.score < cand.score
    # a hand-written rule already naming the CVE: no duplicate candidate
    assert match_cve(_quoted_crash("CVE-2021-47103", "5.15.11"), exclude=["CVE-2021-47103"], st=st) == []


@pytest.mark.skipif(not CORPUS.is_dir(), reason="syzkaller corpus not in ../shared/corpora")
def test_generic_function_alone_is_no_match():
    """syzkaller's 'INFO: task hung in rtnl_lock' (corpus 436) against CVE-2023-54000, whose record quotes
    'INFO: task hung in rtnl_lock' (an hns3 deadlock): same kind, same guilty function, nothing else."""
    from ktriage.kb.cve_match import match_cve
    from ktriage.kb.cve_store import store
    from ktriage.logs import parse_log_text

    st = store()
    assert st.get("CVE-2023-54000")["sigs"][0]["guilty"] == "rtnl_lock"
    log = (CORPUS / "436").read_text(errors="replace").partition("\n\n")[2]
    c = parse_log_text(log)[0]
    assert c.title == "INFO: task hung in rtnl_lock"
    assert match_cve(c, st=st, keep_outside_window=True) == []


@pytest.mark.skipif(not CORPUS.is_dir(), reason="syzkaller corpus not in ../shared/corpora")
def test_corpus_candidate_tun_double_free():
    """syzkaller corpus 5 'KASAN: invalid-free in selinux_tun_dev_free_security' on 4.12.0-rc7 is the bug
    CVE-2021-47082 fixed ('tun: avoid double free in tun_free_netdev', v5.16; its record quotes the same
    syzbot title); 4.12 is in its window (introduced 3.12 per the record, no 4.12.y fix)."""
    from ktriage.kb.cve_match import match_cve
    from ktriage.logs import parse_log_text

    log = (CORPUS / "5").read_text(errors="replace").partition("\n\n")[2]
    (cand, *_) = match_cve(parse_log_text(log)[0])
    assert cand.cve == "CVE-2021-47082" and cand.verdict.answer == "no"


# ------------------------------------------------------------------------------------ changelogs

CL = Path(__file__).parent / "fixtures" / "changelog"
DEB = CL / "linux-6.1.192-3.changelog.Debian.gz"
RPM = CL / "kernel-5.14.0-611.20.1.el9_7.changelog.txt"


def test_changelog_formats():
    from ktriage.kb.changelog import read_changelog

    deb = read_changelog(str(DEB))
    assert (deb.kind, deb.package, deb.build) == ("debian", "linux", "6.1.192-3")
    assert [e.version for e in deb.entries] == ["6.1.192-3", "6.1.192-2", "6.1.192-1"]
    rpm = read_changelog(str(RPM))
    assert rpm.kind == "rpm" and rpm.build == "5.14.0-611.20.1.el9_7" and len(rpm.entries) == 7


def test_changelog_bad_input(tmp_path):
    from ktriage.kb.changelog import ChangelogError, read_changelog

    (tmp_path / "x").write_text("hello\n")
    with pytest.raises(ChangelogError, match="not an RPM changelog"):
        read_changelog(str(tmp_path / "x"))
    r = CliRunner().invoke(
        main, ["kb", "fixed", "CVE-2022-49561", "--kernel", "6.1.0-40-amd64", "--changelog", str(tmp_path / "x")]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output


def _fixed(*args: str):
    r = CliRunner().invoke(main, ["kb", "fixed", *args, "--format", "json"])
    return r.exit_code, json.loads(r.output)


def test_fixed_by_debian_changelog():
    # the record lists no 6.1.y fix (the bug came into 6.1.y with 6.1.116); Debian's 6.1.192-1 entry lists it
    code, d = _fixed("CVE-2023-52490", "--kernel", "6.1.0-40-amd64", "--changelog", str(DEB))
    assert code == 0 and d["changelog"]["fixed"] == "yes"
    assert (
        "lists 'mm: migrate: fix getting incorrect page mapping during page migration' (CVE-2023-52490)"
        in d["changelog"]["reason"]
    )
    assert "6.1.192-1" in d["changelog"]["reason"]
    code, d = _fixed("CVE-2023-52490", "--kernel", "6.1.150")
    assert code == 1 and "never got the fix" in d["reason"]
    # not listed, but Debian 6.1.192-3 is stable 6.1.192, past the 5.19 fix
    code, d = _fixed("CVE-2022-49561", "--kernel", "6.1.0-40-amd64", "--changelog", str(DEB))
    assert code == 0 and "based on stable 6.1.192" in d["reason"] and d["changelog"]["fixed"] == "unknown"


def test_fixed_by_rpm_changelog():
    code, d = _fixed("CVE-2025-39806", "--kernel", "5.14.0-611.20.1.el9_7.x86_64", "--changelog", str(RPM))
    assert code == 0
    assert d["changelog"]["reason"].startswith(
        "fixed in this build: the changelog of kernel-5.14.0-611.20.1.el9_7 lists 'HID: multitouch"
    )
    code, d = _fixed("CVE-2025-39806", "--kernel", "5.14.0-611.20.1.el9_7.x86_64")
    assert code == 4 and "changelog" in d["reason"]
    # listed in an older entry of the build's changelog
    code, d = _fixed("CVE-2025-39843", "--kernel", "5.14.0-611.20.1.el9_7.x86_64", "--changelog", str(RPM))
    assert code == 0 and "5.14.0-611.9.1.el9_7" in d["changelog"]["reason"]


# ------------------------------------------------------------------------------------ analyze


@pytest.mark.parametrize(
    "prefix,rule",
    [
        ("000", "nf-conntrack-clash-refetch"),
        ("001", "tcp-listener-freed-sock-lookup"),
        ("003", "nf-queue-gso-segment-null"),
        ("004", "nf-queue-request-sock-as-full-sock"),
    ],
)
def test_seed_answers_unchanged(prefix, rule):
    """The hand-written answer is first, verified, and the generated tier adds nothing that drowns it."""
    from realdata import seed

    r = CliRunner().invoke(main, ["analyze", str(seed(prefix)), "--format", "json"])
    (cr,) = json.loads(r.output)["crashes"]
    first, *rest = cr["known_bugs"]
    assert (first["id"], first["tier"], first["verified"]) == (rule, "rules", True)
    assert len([m for m in rest if m.get("tier") == "cve"]) <= 1


def test_analyze_changelog_errors(tmp_path):
    from realdata import seed

    r = CliRunner().invoke(main, ["analyze", str(seed("000")), "--changelog", str(tmp_path / "nope")])
    assert r.exit_code == 3 and "cannot read" in r.output and "Traceback" not in r.output


def test_analyze_shows_candidate_with_fixed_in(tmp_path):
    """A log quoting CVE-2021-47103's own report, on 5.15.11: the candidate, its score and fixed-in."""
    desc = json.loads((FIX / "CVE-2021-47103.json").read_text())["containers"]["cna"]["descriptions"][0]["value"]
    log = tmp_path / "dmesg.txt"
    log.write_text(desc.replace("5.16.0-rc5-syzkaller", "5.15.11"))
    r = CliRunner().invoke(main, ["analyze", str(log)])
    line = next(ln for ln in r.output.splitlines() if "CVE-2021-47103" in ln)
    assert "candidate (CVE records, unverified" in line and "NOT fixed" in line and "5.15.12" in line
    d = json.loads(CliRunner().invoke(main, ["analyze", str(log), "--format", "json"]).output)
    (m,) = [m for m in d["crashes"][0]["known_bugs"] if m["id"] == "CVE-2021-47103"]
    assert m["tier"] == "cve" and m["verified"] is False and m["fixed_in_this_kernel"] == "no"


# ------------------------------------------------------------------------------------ rule forms


def test_rule_form_matches_when_main_signature_does_not(tmp_path):
    """A rule whose main signature is the production form (NULL dereference in dst_check) and whose second
    form is the KASAN report: CVE-2021-47103's quoted syzbot report matches through the form."""
    from ktriage.kb.match import evaluate
    from ktriage.kb.rules import load_rules

    (tmp_path / "r.yaml").write_text(
        """id: test-dst-check-uaf
title: 'test: sk_rx_dst freed under RCU readers'
status: verified
signature:
  kinds: [null-deref, paging-request, gpf]
  guilty: [dst_check]
  forms:
  - name: KASAN kernels
    evidence: CVE-2021-47103's record quotes this syzbot report
    kinds: [kasan]
    guilty: [dst_check]
    any_frames: [tcp_v4_early_demux]
fix:
  commit: 8f905c0e7354ef261360fb7535ea079b1082c105
  mainline: '5.16'
"""
    )
    rs = load_rules([str(tmp_path)], packaged=False, configured=False)
    assert not rs.errors, rs.errors
    m = evaluate(rs.get("test-dst-check-uaf"), _quoted_crash("CVE-2021-47103"))
    assert not m.similar and m.matched[0] == "form: KASAN kernels"
    # without the form, the same report is only similar (kind kasan not in the production kinds)
    plain = rs.get("test-dst-check-uaf")
    plain.forms = ()
    assert evaluate(plain, _quoted_crash("CVE-2021-47103")).similar


def test_conntrack_clash_rule_has_kasan_form():
    from ktriage.kb.rules import load_rules

    r = load_rules(configured=False).get("nf-conntrack-clash-refetch")
    ((name, form),) = r.forms
    assert "kasan" in form.kinds and "__nf_ct_ext_exist" in form.guilty and "nf_confirm" in form.any_frames


# ------------------------------------------------------------------------------------ list / show / check


def test_kb_list_show_cve():
    r = CliRunner().invoke(main, ["kb", "list", "--source", "cve", "--format", "json"])
    rows = json.loads(r.output)
    assert len(rows) == 14626 and {x["source"] for x in rows} == {"cve"}
    r = CliRunner().invoke(main, ["kb", "list", "--source", "rules"])
    assert "nf-conntrack-clash-refetch" in r.output and "CVE-" not in r.output.split("\n")[1]
    r = CliRunner().invoke(main, ["kb", "show", "CVE-2022-49561"])
    assert r.exit_code == 0 and "5.10.y: first fixed 5.10.120 (commit 91a36ec160ec)" in r.output
    assert "the record quotes no crash" in r.output and "4.9" in r.output.split("never got the fix: ")[1]
    r = CliRunner().invoke(main, ["kb", "show", "CVE-2022-4956"])
    assert r.exit_code == 1 and "not in the CVE knowledge base" in r.output


def test_kb_check():
    r = CliRunner().invoke(main, ["kb", "check", "--kernel", "5.10.119", "--format", "json"])
    d = json.loads(r.output)
    classes = list(d["classes"])
    sizes = [len(d["classes"][k]) for k in classes]
    assert sizes == sorted(sizes, reverse=True)  # most common crash classes first
    ids = {x["id"] for v in d["classes"].values() for x in v}
    assert "nf-conntrack-clash-refetch" in ids  # the hand rule: 5.10.119 < 5.10.120
    assert "CVE-2022-49561" not in ids  # its CVE (no signature, and the rule names it) is not listed twice
    assert "CVE-2021-47103" in ids  # quotes a KASAN report; first fixed 5.10.150 on 5.10.y
    r = CliRunner().invoke(main, ["kb", "check", "--kernel", "5.10.150", "--format", "json"])
    ids150 = {x["id"] for v in json.loads(r.output)["classes"].values() for x in v}
    assert "nf-conntrack-clash-refetch" not in ids150 and "CVE-2021-47103" not in ids150


def test_kb_update_goes_to_user_dir_and_is_preferred(tmp_path, monkeypatch):
    from ktriage.kb import cve_store

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("KTRIAGE_CVE_KB", raising=False)
    r = CliRunner().invoke(main, ["kb", "update", "--vulns", str(_tree(tmp_path))])
    assert r.exit_code == 0, r.output
    path, origin = cve_store.data_path()
    assert origin == "user" and path == tmp_path / "data" / "ktriage" / "cve-kb.jsonl.gz"
    assert cve_store.store().header()["counts"]["imported"] == 4
    monkeypatch.setenv("KTRIAGE_CVE_KB", "off")
    assert cve_store.data_path() == (None, "disabled by KTRIAGE_CVE_KB")


def test_changelog_of_another_build_is_flagged():
    from ktriage.kb.changelog import mismatch, read_changelog

    rpm = read_changelog(str(RPM))
    assert mismatch(rpm, "5.14.0-611.20.1.el9_7.x86_64") is None
    assert "is not this kernel's" in mismatch(rpm, "3.10.0-1160.el7.x86_64")
    assert mismatch(read_changelog(str(DEB)), "6.1.0-40-amd64") is None  # Debian releases do not name the build


def test_installed_debian_changelog_found(tmp_path):
    """On a Debian machine the package of kernel 6.1.0-40-amd64 keeps its changelog under
    /usr/share/doc/linux-image-6.1.0-40-amd64/changelog.Debian.gz."""
    from ktriage.kb.changelog import installed_changelog

    d = tmp_path / "usr" / "share" / "doc" / "linux-image-6.1.0-40-amd64"
    d.mkdir(parents=True)
    shutil.copy(DEB, d / "changelog.Debian.gz")
    cl = installed_changelog("6.1.0-40-amd64", root=str(tmp_path))
    assert cl is not None and cl.build == "6.1.192-3"
    assert installed_changelog("6.1.0-41-amd64", root=str(tmp_path)) is None
