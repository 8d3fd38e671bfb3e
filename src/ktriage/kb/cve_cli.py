"""`ktriage kb import-cve|update|fixed|check` and the CVE side of `kb list|show`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ktriage.kb.cve_fixed import cve_verdict, fix_summary, unfixed_branches
from ktriage.kb.cve_store import CveStore, store, user_data_path
from ktriage.model import Kernel


def _fail(msg: str, code: int = 1) -> None:
    click.echo(f"ktriage: kb: {msg}", err=True)
    sys.exit(code)


def _import(path: str, out: str) -> None:
    from ktriage.kb.cve_import import import_records, write_db

    try:
        res = import_records(path)
    except FileNotFoundError as e:
        _fail(str(e), 2)
    header = write_db(res, out)
    c = header["counts"]
    click.echo(
        f"{c['imported']} CVE records imported ({c['with_signature']} quote a crash and have a signature, "
        f"{c['with_versions']} have usable version data), {c['skipped']} skipped"
    )
    for reason, n in res.skipped.most_common():
        click.echo(f"  skipped {n}: {reason} (first: {res.skipped_examples.get(reason, '?')})")
    click.echo(f"written: {out}")


@click.command("import-cve")
@click.argument("path", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Where to write the tier.")
def import_cve(path: str, out: str | None) -> None:
    """Build the generated CVE tier from a vulns.git checkout or a tarball of one.

    Without -o the tier goes where `kb update` puts it (the user's data directory)."""
    _import(path, out or str(user_data_path()))


@click.command("update")
@click.option("--vulns", "vulns", required=True, type=click.Path(), help="A vulns.git checkout (or tarball).")
def update(vulns: str) -> None:
    """Rebuild the CVE tier from a newer vulns.git into the user's data directory (used from then on)."""
    _import(vulns, str(user_data_path()))


def _need(st: CveStore) -> None:
    if not st.available:
        _fail(st.error or "no CVE knowledge base (run `ktriage kb update --vulns DIR`)")


def _entry_or_fail(st: CveStore, cve_id: str) -> dict[str, Any]:
    e = st.get(cve_id)
    if e is None:
        like = st.ids_like(cve_id.rsplit("-", 1)[0] + "-" + cve_id.rsplit("-", 1)[-1][:3]) if "-" in cve_id else []
        hint = f" (did you mean: {', '.join(like)}?)" if like else ""
        _fail(f"{cve_id} is not in the CVE knowledge base{hint}")
    assert e is not None
    return e


def _kernel(release: str, build: str | None) -> Kernel:
    return Kernel(release=release, build=build)


@click.command("fixed")
@click.argument("bug_id")
@click.option("--kernel", "release", required=True, help="Kernel release (uname -r), e.g. 5.10.119.")
@click.option("--build", default=None, help="The build string (uname -v), e.g. '#1 SMP Debian 6.1.76-1'.")
@click.option("--changelog", "changelog", type=click.Path(dir_okay=False), help="The distro kernel's changelog.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def fixed_cmd(bug_id: str, release: str, build: str | None, changelog: str | None, fmt: str) -> None:
    """Is BUG_ID (a CVE id or a rule id) fixed in this kernel? Exit 0 fixed, 1 not fixed, 4 unknown."""
    from ktriage.kb.fixed import fixed_verdict
    from ktriage.kb.rules import cached_rules

    k = _kernel(release, build)
    rule = cached_rules(()).get(bug_id)
    if rule is not None:
        v = fixed_verdict(rule, k)
        subject, cves = str(rule.fix.get("subject") or rule.title), list(rule.data.get("cve") or [])
        summary = f"rule {rule.id}"
        never: list[str] = []
    else:
        st = store()
        _need(st)
        e = _entry_or_fail(st, bug_id)
        v = cve_verdict(e, k, st.header().get("branches"))
        subject, cves, summary = e.get("subject", ""), [e["id"]], fix_summary(e)
        never = unfixed_branches(e, st.header().get("branches") or [])
    cl = None
    if changelog:
        cl = _changelog_line(changelog, subject, cves)
        if rule is None:
            from ktriage.kb.changelog import cached_changelog
            from ktriage.kb.cve_match import changelog_verdict

            v = changelog_verdict(cached_changelog(changelog), e, v)
    answer = "yes" if cl is not None and cl[0] == "yes" else v.answer
    if fmt == "json":
        out: dict[str, Any] = {"id": bug_id, "kernel": release, "fixed": answer, "reason": v.reason, "basis": v.basis}
        if never:
            out["branches_never_fixed"] = never
        if cl is not None:
            out["changelog"] = {"fixed": cl[0], "reason": cl[1]}
        click.echo(json.dumps(out, indent=2))
    else:
        word = {"yes": "fixed", "no": "NOT fixed", "unknown": "unknown"}[answer]
        click.echo(f"{bug_id} on {release}: {word} — {v.reason}")
        click.echo(f"  {subject}: {summary}")
        if never:
            click.echo(f"  branches that never got the fix: {', '.join(never)}")
        if cl is not None:
            click.echo(f"  changelog: {cl[1]}")
    if changelog:
        from ktriage.kb.changelog import cached_changelog, mismatch

        warn = mismatch(cached_changelog(changelog), release)
        if warn:
            click.echo(f"ktriage: kb: warning: {warn}", err=True)
    sys.exit({"yes": 0, "no": 1}.get(answer, 4))


def _changelog_line(path: str, subject: str, cves: list[str]) -> tuple[str, str] | None:
    from ktriage.kb.changelog import ChangelogError, find_fix, read_changelog

    try:
        cl = read_changelog(path)
    except ChangelogError as e:
        _fail(str(e), 2)
        return None
    hit = find_fix(cl, subject, cves)
    return hit.answer, hit.text


def show_cve(cve_id: str, fmt: str) -> None:
    st = store()
    _need(st)
    e = _entry_or_fail(st, cve_id)
    never = unfixed_branches(e, st.header().get("branches") or [])
    if fmt in ("json", "yaml"):
        click.echo(json.dumps({**e, "branches_never_fixed": never, "tier": "cve"}, indent=2, ensure_ascii=False))
        return
    out = [f"{e['id']} (generated from the kernel CNA's CVE record): {e.get('subject', '')}"]
    out.append(f"  {fix_summary(e)}")
    if e.get("introduced"):
        out.append(f"  introduced: {', '.join(e['introduced'])}")
    for br, (rel, commit) in (e.get("stable") or {}).items():
        out.append(f"  {br}.y: first fixed {rel}" + (f" (commit {commit})" if commit else ""))
    if never:
        out.append(f"  branches that never got the fix: {', '.join(never)}")
    for br, rel in (e.get("unfixed") or {}).items():
        out.append(f"  {br}.y: the bug came in with {rel} (a backport) and was never fixed there")
    if e.get("files"):
        out.append(f"  files: {', '.join(e['files'])}")
    for s in e.get("sigs") or []:
        out.append(
            f"  quoted crash: {s['title']} (kind {s['kind']}" + (f", on {s['release']})" if s.get("release") else ")")
        )
        if s.get("guilty"):
            out.append(f"    guilty: {s['guilty']}")
        if s.get("frames"):
            out.append(f"    call trace: {' < '.join(s['frames'][:10])}")
    if not e.get("sigs"):
        out.append("  the record quotes no crash (no signature: only a hand-written rule can match it)")
    out.append(f"  record: https://www.cve.org/CVERecord?id={e['id']}")
    click.echo("\n".join(out))


def list_cve(fmt: str, limit: int | None) -> list[dict[str, Any]]:
    st = store()
    _need(st)
    rows = []
    for e in st.all():
        sig = (e.get("sigs") or [{}])[0]
        rows.append(
            {
                "id": e["id"],
                "source": "cve",
                "commit": e.get("commit", ""),
                "mainline": e.get("mainline", ""),
                "kind": sig.get("kind", ""),
                "title": e.get("subject", ""),
            }
        )
        if limit and len(rows) >= limit:
            break
    return rows


@click.command("check")
@click.option("--kernel", "release", required=True, help="Kernel release (uname -r), e.g. 5.10.119.")
@click.option("--build", default=None, help="The build string (uname -v), e.g. '#1 SMP Debian 6.1.76-1'.")
@click.option("--changelog", "changelog", type=click.Path(dir_okay=False), help="The distro kernel's changelog.")
@click.option("--per-class", "per_class", type=int, default=5, show_default=True, help="Bugs shown per crash class.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check_cmd(release: str, build: str | None, changelog: str | None, per_class: int, fmt: str) -> None:
    """The known crash bugs this kernel still has (CVE records quoting a crash, and the hand-written rules),
    grouped by crash class, the most common class first."""
    from collections import defaultdict

    from ktriage.kb.fixed import Verdict, fixed_verdict
    from ktriage.kb.rules import cached_rules

    cl = None
    if changelog:
        from ktriage.kb.changelog import ChangelogError, read_changelog

        try:
            cl = read_changelog(changelog)
        except ChangelogError as e:
            _fail(str(e), 2)
    st = store()
    _need(st)
    k = _kernel(release, build)
    branches = st.header().get("branches") or []
    still: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts = {"yes": 0, "no": 0, "unknown": 0, "not-affected": 0, "listed": 0}
    rows: list[tuple[str, str, str, list[str], Any]] = []
    seen_cves, seen_commits = set(), set()
    for r in cached_rules(()):
        kinds = list((r.data.get("signature") or {}).get("kinds") or ["unknown"])
        rows.append((r.id, str(r.fix.get("subject") or r.title), kinds[0], list(r.data.get("cve") or []), r))
        seen_cves |= set(r.data.get("cve") or [])
        seen_commits.add(str(r.fix.get("commit") or "")[:12])
    for ent in st.all():
        if ent.get("sigs") and ent["id"] not in seen_cves and ent.get("commit") not in seen_commits:
            rows.append((ent["id"], ent.get("subject", ""), ent["sigs"][0]["kind"], [ent["id"]], ent))
    from ktriage.kb.changelog import debian_kernel, find_fix
    from ktriage.kb.cve_match import changelog_verdict

    deb = debian_kernel(cl) if cl is not None else None
    for bug_id, subject, kind, cves, obj in rows:
        if isinstance(obj, dict):
            v = cve_verdict(obj, k, branches)
            if cl is not None:
                v = changelog_verdict(cl, obj, v)
        else:
            v = fixed_verdict(obj, k)
            if cl is not None and v.answer != "yes":
                hit = find_fix(cl, subject, cves)
                if hit.answer == "yes":
                    v = Verdict("yes", hit.text, f"changelog:{cl.kind}")
                elif deb is not None and fixed_verdict(obj, deb).answer == "yes":
                    v = fixed_verdict(obj, deb)
        answer = "not-affected" if v.affected is False else v.answer
        if answer == "unknown" and cl is not None and "not listed up to this build" in v.reason:
            answer = "not-listed"
        counts[answer if answer in counts else "unknown"] += 1
        if answer in ("no", "not-listed"):
            still[kind].append({"id": bug_id, "subject": subject, "kind": kind, "status": answer, "reason": v.reason})
    order = sorted(still, key=lambda kd: (-len(still[kd]), kd))
    if fmt == "json":
        click.echo(
            json.dumps({"kernel": release, "counts": counts, "classes": {kd: still[kd] for kd in order}}, indent=2)
        )
        return
    total = sum(len(v) for v in still.values())
    label = "not fixed or not listed in the changelog" if cl is not None else "not fixed"
    click.echo(
        f"{release}: {total} known crash bugs {label} ({counts['yes']} fixed, {counts['not-affected']} not in this "
        f"kernel's range, {counts['unknown']} unknown)"
    )
    if cl is None and total == 0 and counts["unknown"]:
        click.echo("  a distro or vendor kernel: its version does not decide; give its changelog (--changelog FILE)")
    for kd in order:
        items = still[kd]
        click.echo(f"  {kd}: {len(items)}")
        for x in items[:per_class]:
            click.echo(f"    {x['id']}  {x['subject']}")
        if len(items) > per_class:
            click.echo(f"    ... {len(items) - per_class} more (--per-class N, --format json)")
