"""The known-bug engine: version orderings, fixed-in answers, matching, loading and overriding rules."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ktriage.kb import (
    KBNote,
    Match,
    debvercmp,
    fixed_verdict,
    kvercmp,
    load_rule_file,
    load_rules,
    match_crash,
    rpm_evr_cmp,
    rpmvercmp,
    running_kernel,
)
from ktriage.logs import parse_log_text
from ktriage.model import Kernel
from realdata import seed

PACKAGED = Path(__file__).resolve().parent.parent / "src" / "ktriage" / "kb" / "bugs"


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory, monkeypatch):
    """No user config or KTRIAGE_KB_PATH from the machine running the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.delenv("KTRIAGE_KB_PATH", raising=False)


# ------------------------------------------------------------------------------------ RPM
# Pairs from rpm's own test suite (tests/rpmvercmp.at), checked by hand against the algorithm.
RPM_PAIRS = [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("8", "xyz.4", 1),
    ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1),
    ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1),
    ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1),
    ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("20101122", "20101121", 1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("2_0", "2.0", 0),
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("a_", "a+", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("+_", "_+", 0),
    ("_+", "+_", 0),
    ("_+", "+", 0),
    ("+", "_+", 0),
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1),
    ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
]


@pytest.mark.parametrize("a,b,want", RPM_PAIRS)
def test_rpmvercmp(a: str, b: str, want: int) -> None:
    assert rpmvercmp(a, b) == want


@pytest.mark.parametrize(
    "a,b,want",
    [
        ("2.6.32-358.el6", "2.6.32-358.6.1.el6", -1),  # a z-stream update is newer than the GA build
        ("3.10.0-1160.el7", "3.10.0-1160.66.1.el7", -1),
        ("3.10.0-1160.66.1.el7.x86_64", "3.10.0-1160.66.1.el7", 0),  # arch suffix ignored
        ("4.18.0-305.3.1.el8_4", "4.18.0-373.el8", -1),
        ("4.18.0-477.10.1.el8_8", "4.18.0-373.el8", 1),
        ("5.14.0-362.8.1.el9_3", "5.14.0-362.el9", 1),
        ("4.18.0-80.el8", "4.18.0-147.el8", -1),  # numeric, not string, order
        ("1:3.10.0-1.el7", "3.10.0-1160.el7", 1),  # epoch wins
    ],
)
def test_rpm_kernel_nvr(a: str, b: str, want: int) -> None:
    assert rpm_evr_cmp(a, b) == want
    assert rpm_evr_cmp(b, a) == -want


# --------------------------------------------------------------------------------- Debian
@pytest.mark.parametrize(
    "a,b,want",
    [
        ("1:1.0", "2.0", 1),  # epoch first
        ("1.0~rc1", "1.0", -1),  # tilde sorts before the end
        ("1.0~~", "1.0~", -1),
        ("1.0~", "1.0", -1),
        ("1.0", "1.0a", -1),  # dpkg's documented ~~ < ~ < "" < a
        ("1.0", "1.0-1", -1),
        ("1.0-1", "1.0-1", 0),
        ("2.30", "2.4", 1),  # numeric parts compare as numbers
        ("1.0+b1", "1.0", 1),
        ("6.1.76-1", "6.1.69-1", 1),
        ("6.1.76-1", "6.1.76-1", 0),
        ("5.10.120-1~bpo10+1", "5.10.120-1", -1),  # a backport sorts before the release it is from
        ("4.19.118-2+deb10u1", "4.19.118-2", 1),
        ("5.15.0-91.101", "5.15.0-92.102", -1),
        ("5.15.0-91.101", "5.15.0-91.99", 1),
        ("1.0-0", "1.0", 0),
    ],
)
def test_debvercmp(a: str, b: str, want: int) -> None:
    assert debvercmp(a, b) == want
    assert debvercmp(b, a) == -want


# ------------------------------------------------------------------------------- upstream
@pytest.mark.parametrize(
    "a,b,want",
    [
        ("5.10.120", "5.10.97", 1),  # not string order
        ("5.19-rc3", "5.19", -1),
        ("5.19", "5.19.0", 0),
        ("6.0", "5.19.17", 1),
        ("5.12-rc1", "5.12-rc10", -1),
        ("6.6.0-rc7-syzkaller-00142-g888cf78c29e2", "6.6-rc7", 0),
        ("v4.14.282", "4.14.281", 1),
    ],
)
def test_kvercmp(a: str, b: str, want: int) -> None:
    assert kvercmp(a, b) == want


def test_running_kernel_families() -> None:
    rk = running_kernel("3.10.0-1160.el7.x86_64")
    assert (rk.family, rk.distro) == ("el", "el7")
    rk = running_kernel("6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")
    assert (rk.family, rk.package) == ("debian", "6.1.76-1")
    assert running_kernel("6.1.0-18-amd64", "#1").package is None
    rk = running_kernel("5.15.0-91-generic", "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023")
    assert (rk.family, rk.ubuntu_abi, rk.package) == ("ubuntu", ("5.15.0", 91), "5.15.0-91.101")
    rk = running_kernel("5.10.150")
    assert (rk.family, str(rk.upstream), rk.snapshot) == ("upstream", "5.10.150", False)
    assert running_kernel("6.15.0-syzkaller-10402-g4cb6c8af8591").snapshot
    assert running_kernel("5.10.0-1057-oem").family == "vendor"  # a packager's ABI build, not vanilla 5.10.0
    assert running_kernel("6.0.0-rc4-00133-g64ae13ed4784").family == "upstream"


# ------------------------------------------------------------------------------- verdicts
def _rule(**over):  # type: ignore[no-untyped-def]
    data = {
        "id": "test-bug",
        "title": "test bug",
        "status": "verified",
        "signature": {
            "kinds": ["null-deref"],
            "guilty": ["nf_ct_deliver_cached_events"],
            "frames": [
                {"function": "nf_ct_deliver_cached_events", "module": "nf_conntrack"},
                {"function": "ipv4_confirm"},
                {"function": "nf_reinject"},
            ],
            "kernel": {"introduced": "4.7", "fixed": "5.19"},
        },
        "fix": {
            "commit": "56b14ecec97f39118bf85c9ac2438c5a949509ed",
            "subject": "s",
            "mainline": "5.19",
            "stable": ["4.14.282", "5.10.120", "5.15.45"],
        },
    }
    for k, v in over.items():
        if k == "signature":
            data["signature"] = {**data["signature"], **v}
        else:
            data[k] = v
    rule, errors = load_rule_file(yaml.safe_dump(data), "test-bug.yaml", "test")
    assert not errors, [str(e) for e in errors]
    return rule


def _answer(rule, release: str, build: str | None = None) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    v = fixed_verdict(rule, Kernel(release=release, build=build))
    return v.answer, v.reason


@pytest.mark.parametrize(
    "release,want",
    [
        ("5.10.150", "yes"),  # >= 5.10.120, the stable release of its own branch
        ("5.10.97", "no"),  # 5.10.y, older than the backport
        ("5.4.100", "no"),  # in [4.7, 5.19), no 5.4.y backport recorded
        ("5.19.3", "yes"),
        ("6.1.0", "yes"),
        ("5.19.0-rc5", "unknown"),  # which -rc got the fix is not recorded
        ("4.4.1", "unknown"),  # predates the bug
        ("5.18.0-10402-gabcdef012345", "unknown"),  # a snapshot possibly in the 5.19 merge window
        ("5.15.0-rc3", "no"),  # not 5.19, no 5.15-rc backport
    ],
)
def test_upstream_verdicts(release: str, want: str) -> None:
    assert _answer(_rule(), release)[0] == want


def test_distro_kernel_older_than_introduction_is_not_unaffected() -> None:
    ans, why = _answer(_rule(), "2.6.32-358.el6.x86_64")
    assert ans == "unknown" and "backport" in why


def test_el_entries() -> None:
    r = _rule(
        distros=[
            {"distro": "el8", "fixed_in": "4.18.0-373.el8"},
            {"distro": "el7", "not_fixed_through": "3.10.0-1160.66.1.el7"},
        ]
    )
    assert _answer(r, "4.18.0-305.3.1.el8.x86_64")[0] == "no"
    assert _answer(r, "4.18.0-373.el8.x86_64")[0] == "yes"
    assert _answer(r, "4.18.0-477.10.1.el8_8.x86_64")[0] == "yes"
    assert _answer(r, "3.10.0-1160.el7.x86_64")[0] == "no"
    assert _answer(r, "3.10.0-1160.66.1.el7.x86_64")[0] == "no"
    ans, why = _answer(r, "3.10.0-1160.80.1.el7.x86_64")
    assert ans == "unknown" and "newer" in why
    assert _answer(r, "5.14.0-362.el9.x86_64")[0] == "unknown"  # no el9 entry


def test_debian_needs_the_package_version() -> None:
    r = _rule(distros=[{"distro": "debian", "fixed_in": "6.1.82-1"}])
    ans, why = _answer(r, "6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC")
    assert ans == "unknown" and "does not give the Debian package version" in why
    assert _answer(r, "6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")[0] == "no"
    assert _answer(r, "6.1.0-20-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.85-1 (2024-04-11)")[0] == "yes"
    # no debian entry: the package's stable base decides only a "yes"
    r2 = _rule(
        fix={"commit": "56b14ecec97f39118bf85c9ac2438c5a949509ed", "mainline": "6.4", "stable": ["6.1.29", "5.10.180"]},
        signature={"kernel": {"introduced": "4.7", "fixed": "6.4"}},
    )
    assert _answer(r2, "6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")[0] == "yes"
    assert _answer(r2, "5.10.0-9-amd64", "#1 SMP Debian 5.10.70-1 (2021-09-30)")[0] == "unknown"


def test_ubuntu_abi() -> None:
    r = _rule(distros=[{"distro": "ubuntu", "fixed_in": "5.15.0-92.102"}])
    assert _answer(r, "5.15.0-91-generic")[0] == "no"
    assert _answer(r, "5.15.0-94-generic")[0] == "yes"
    assert _answer(r, "5.15.0-92-generic")[0] == "unknown"  # same ABI, no upload number
    assert _answer(r, "5.15.0-92-generic", "#102-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023")[0] == "yes"
    assert _answer(r, "5.15.0-92-generic", "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023")[0] == "no"
    assert _answer(r, "5.4.0-150-generic")[0] == "unknown"  # another series


# ------------------------------------------------------------------------- seeds (golden)
def _seed000():  # type: ignore[no-untyped-def]
    crashes = parse_log_text(seed("000").read_text(encoding="utf-8", errors="replace"))
    assert crashes
    return crashes[0]


def test_seed000_golden_not_fixed() -> None:
    crash = _seed000()
    found = match_crash(crash, [], [])
    full = [m for m in found if isinstance(m, Match) and not m.similar]
    assert full and full[0].rule_id == "nf-conntrack-clash-refetch"
    m = full[0]
    assert m.fixed_in_this_kernel == "no"
    assert "3.10.0-1160.66.1.el7" in m.fixed_reason
    lines = m.text_lines()
    assert lines[0].startswith("nf-conntrack-clash-refetch (verified, score ")
    assert lines[1].startswith("fix: 56b14ecec97f netfilter: conntrack: re-fetch conntrack after insertion (v5.19")
    assert any(l.startswith("this kernel: NOT fixed") for l in lines)
    assert any(l.startswith("workaround: sysctl -w net.netfilter.nf_conntrack_events=0") for l in lines)
    assert any(l.startswith("confirm: bpftrace -e '") for l in lines)
    d = json.loads(json.dumps(m.to_dict()))
    assert d["id"] == m.rule_id and d["fixed_in_this_kernel"] == "no" and d["similar"] is False
    assert m.markdown_lines()[0].startswith("- **`nf-conntrack-clash-refetch`**")


def test_seed000_with_format_example_rule(tmp_path: Path) -> None:
    """The FORMAT.md example signature (faulting function first, then callers) matches seed 000."""
    r = _rule(distros=[{"distro": "el7", "not_fixed_through": "3.10.0-1160.66.1.el7"}])
    rs = load_rules([], packaged=False, configured=False)
    rs.rules[r.id] = r
    (m,) = [x for x in match_crash(_seed000(), [], [], rules=rs) if isinstance(x, Match)]
    assert not m.similar and m.score == 1.0 and m.fixed_in_this_kernel == "no"


@pytest.mark.parametrize(
    "rule_id,release",
    [
        ("nf-queue-request-sock-as-full-sock", "4.18.0-305.3.1.el8.x86_64"),  # seed 004
        ("nf-queue-gso-segment-null", "2.6.32-358.el6.x86_64"),  # seed 003
        ("nf-conntrack-clash-refetch", "3.10.0-1160.el7.x86_64"),  # seed 000
    ],
)
def test_seed_golden_release_strings(rule_id: str, release: str) -> None:
    rule = load_rules().get(rule_id)
    if rule is None:
        pytest.skip(f"rule {rule_id} not written yet")
    assert fixed_verdict(rule, Kernel(release=release)).answer == "no"


@pytest.mark.parametrize(
    "prefix,rule_id", [("003", "nf-queue-gso-segment-null"), ("004", "nf-queue-request-sock-as-full-sock")]
)
def test_seed_crash_output_golden(prefix: str, rule_id: str) -> None:
    from ktriage.kb.lint import read_example

    try:
        crashes = read_example(seed(prefix))
    except LookupError as e:
        pytest.skip(str(e))
    if not crashes:
        pytest.skip("crash-output reader finds no crash yet")
    found = [m for c in crashes for m in match_crash(c, [], []) if isinstance(m, Match) and not m.similar]
    m = next((m for m in found if m.rule_id == rule_id), None)
    assert m is not None, [x.rule_id for x in found]
    if crashes[0].kernel.release:
        assert m.fixed_in_this_kernel == "no", m.fixed_reason


# ------------------------------------------------------------------------------ matching
def test_similar_is_never_a_match() -> None:
    r = _rule(signature={"kinds": ["gpf"]})  # frames and guilty agree, the kind does not
    rs = load_rules([], packaged=False, configured=False)
    rs.rules[r.id] = r
    (m,) = [x for x in match_crash(_seed000(), [], [], rules=rs) if isinstance(x, Match)]
    assert m.similar and m.score < 1.0
    assert any("kind null-deref not in gpf" in x for x in m.missed)
    assert m.text_lines()[0].startswith("similar, NOT a match: test-bug")
    assert m.to_dict()["kind"] == "similar"


def test_frame_module_is_checked() -> None:
    r = _rule(
        signature={
            "frames": [{"function": "nf_ct_deliver_cached_events", "module": "nf_tables"}, {"function": "nf_reinject"}]
        }
    )
    rs = load_rules([], packaged=False, configured=False)
    rs.rules[r.id] = r
    (m,) = [x for x in match_crash(_seed000(), [], [], rules=rs) if isinstance(x, Match)]
    assert m.similar and any(x.startswith("frames 1/2") for x in m.missed)


def test_frames_must_be_in_order() -> None:
    r = _rule(signature={"frames": [{"function": "nf_reinject"}, {"function": "ipv4_confirm"}]})
    rs = load_rules([], packaged=False, configured=False)
    rs.rules[r.id] = r
    (m,) = [x for x in match_crash(_seed000(), [], [], rules=rs) if isinstance(x, Match)]
    assert m.similar


# ---------------------------------------------------------------------- loading, overrides
def _packaged_text(rule_id: str) -> str:
    p = PACKAGED / f"{rule_id}.yaml"
    if not p.is_file():
        pytest.skip(f"packaged rule {rule_id} not present")
    return p.read_text(encoding="utf-8")


def _override_dir(tmp_path: Path) -> Path:
    data = yaml.safe_load(_packaged_text("nf-conntrack-clash-refetch"))
    data["title"] = "LOCAL OVERRIDE"
    data["distros"] = [{"distro": "el7", "fixed_in": "3.10.0-1160.el7"}]
    data.pop("examples", None)
    data.pop("negative_examples", None)
    d = tmp_path / "mykb"
    d.mkdir()
    (d / "nf-conntrack-clash-refetch.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return d


def test_user_dir_overrides_packaged_rule(tmp_path: Path) -> None:
    d = _override_dir(tmp_path)
    rs = load_rules([str(d)])
    r = rs.get("nf-conntrack-clash-refetch")
    assert r.title == "LOCAL OVERRIDE" and r.origin == str(d) and r.overrides
    assert not rs.errors
    m = next(x for x in match_crash(_seed000(), [], [str(d)]) if isinstance(x, Match))
    assert m.title == "LOCAL OVERRIDE" and m.fixed_in_this_kernel == "yes"


def test_env_and_config_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _override_dir(tmp_path)
    monkeypatch.setenv("KTRIAGE_KB_PATH", f"/nonexistent-kb-dir:{d}")
    rs = load_rules()
    assert rs.get("nf-conntrack-clash-refetch").title == "LOCAL OVERRIDE"
    assert any("nonexistent-kb-dir" in str(e) for e in rs.errors)
    monkeypatch.delenv("KTRIAGE_KB_PATH")
    xdg = tmp_path / "xdg"
    (xdg / "ktriage").mkdir(parents=True)
    (xdg / "ktriage" / "config.toml").write_text(f'kb_dirs = ["{d}"]\n', encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert load_rules().get("nf-conntrack-clash-refetch").title == "LOCAL OVERRIDE"


BAD_RULES = {
    "bad-kind.yaml": (
        """
        id: bad-kind
        title: t
        status: reported
        signature: {kinds: [nul-deref], guilty: [foo]}
        """,
        "signature.kinds[0]",
    ),
    "bad-commit.yaml": (
        """
        id: bad-commit
        title: t
        status: verified
        signature: {guilty: [foo]}
        fix: {commit: 56b14ecec97f, mainline: "5.19"}
        """,
        "fix.commit",
    ),
    "bad-number.yaml": (
        """
        id: bad-number
        title: t
        status: reported
        signature: {guilty: [foo], kernel: {fixed: 5.10}}
        """,
        "signature.kernel.fixed",
    ),
    "bad-yaml.yaml": (
        """
        id: bad-yaml
        title: [unclosed
        """,
        "YAML syntax error",
    ),
    "bad-regex.yaml": (
        """
        id: bad-regex
        title: t
        status: reported
        signature: {related_events: ["Attempt to release TCP socket in state (10"]}
        """,
        "signature.related_events[0]",
    ),
    "bad-key.yaml": (
        """
        id: bad-key
        title: t
        status: reported
        signture: {guilty: [foo]}
        """,
        "unknown key",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_RULES))
def test_bad_rule_is_one_line_error(tmp_path: Path, name: str) -> None:
    text, needle = BAD_RULES[name]
    (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    rs = load_rules([str(tmp_path)])
    errs = [str(e) for e in rs.errors if name in str(e)]
    assert errs, [str(e) for e in rs.errors]
    assert all("\n" not in e and "Traceback" not in e for e in errs)
    assert any(needle in e for e in errs), errs
    assert len(rs) > 0  # the other rules still load


def test_bad_rule_keeps_analyze_going(tmp_path: Path) -> None:
    text, _ = BAD_RULES["bad-kind.yaml"]
    (tmp_path / "bad-kind.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    found = match_crash(_seed000(), [], [str(tmp_path)])
    notes = [x for x in found if isinstance(x, KBNote)]
    assert any("bad-kind.yaml" in n.message and "signature.kinds[0]" in n.message for n in notes)
    assert any(isinstance(x, Match) and x.rule_id == "nf-conntrack-clash-refetch" for x in found)

    from ktriage.cli import main

    res = CliRunner().invoke(main, ["analyze", "--kb", str(tmp_path), str(seed("000"))])
    assert res.exit_code == 0, res.output
    assert "nf-conntrack-clash-refetch" in res.output and "bad-kind.yaml" in res.output
    res = CliRunner().invoke(main, ["analyze", "--format", "json", "--kb", str(tmp_path), str(seed("000"))])
    doc = json.loads(res.output)
    kb = doc["crashes"][0]["known_bugs"]
    assert kb[0]["id"] == "nf-conntrack-clash-refetch"
    assert any("bad-kind.yaml" in n for n in doc["notes"])  # the bad rule is a report-wide note


def test_cli_list_show_and_lint_of_a_bad_dir(tmp_path: Path) -> None:
    from ktriage.cli import main

    text, _ = BAD_RULES["bad-commit.yaml"]
    (tmp_path / "bad-commit.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    r = CliRunner().invoke(main, ["kb", "list", "--kb", str(tmp_path)])
    assert r.exit_code == 0 and "nf-conntrack-clash-refetch" in r.output
    r = CliRunner().invoke(main, ["kb", "show", "nf-conntrack-clash-refetch"])
    assert r.exit_code == 0 and "probe (bpftrace):" in r.output and "56b14ecec97f" in r.output
    r = CliRunner().invoke(main, ["kb", "show", "nf-conntrack-clash-refetc"])
    assert r.exit_code == 1 and "did you mean" in r.output
    r = CliRunner().invoke(main, ["kb", "lint", "--no-examples", "--kb", str(tmp_path)])
    assert r.exit_code == 1
    assert any("bad-commit.yaml" in line and "fix.commit" in line for line in r.output.splitlines())
    assert "Traceback" not in r.output
