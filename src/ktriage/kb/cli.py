"""`ktriage kb list|show|lint|fixed|check|import-cve|update`: the known-bug knowledge base from the command line.

Two tiers: the hand-written rules (kb/bugs/*.yaml, verified) and the tier generated from the kernel CNA's
CVE records (kb/cve_*.py, candidates only)."""

from __future__ import annotations

import difflib
import json
import sys

import click
import yaml

from ktriage.kb.rules import RuleSet, load_rules

_KB_OPTION = click.option(
    "--kb",
    "kb_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Extra directory of known-bug rules (repeatable; overrides packaged rules by id).",
)


def _load(kb_dirs: tuple[str, ...]) -> RuleSet:
    rs = load_rules(list(kb_dirs))
    for e in rs.errors:
        click.echo(f"ktriage: kb: {e}", err=True)
    for n in rs.notes:
        click.echo(f"ktriage: kb: note: {n}", err=True)
    return rs


@click.group("kb")
def kb() -> None:
    """Known-bug rules: list them, show one, lint them.

    \b
    Example:
      ktriage kb show nf-conntrack-clash-refetch
    """


@kb.command("list")
@_KB_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--source",
    type=click.Choice(["rules", "cve"]),
    default="rules",
    show_default=True,
    help="rules: the hand-written rules; cve: the tier generated from the CVE records.",
)
@click.option("--limit", type=int, default=None, help="At most this many lines (cve).")
def list_cmd(kb_dirs: tuple[str, ...], fmt: str, source: str, limit: int | None) -> None:
    """One line per rule: id, status, fix commit, mainline release, title.

    \b
    Example:
      ktriage kb list --kb ./my-rules
      ktriage kb list --source cve --limit 20
    """
    if source == "cve":
        from ktriage.kb.cve_cli import list_cve

        crows = list_cve(fmt, limit)
        if fmt == "json":
            click.echo(json.dumps(crows, indent=2, ensure_ascii=False))
            return
        for x in crows:
            click.echo(
                f"{x['id']:<16}  {x['commit'] or '-':<12}  {x['mainline'] or '-':<6}  {x['kind'] or '-':<15}  {x['title']}"
            )
        click.echo(f"{len(crows)} CVE records ({sum(1 for x in crows if x['kind'])} with a crash signature)")
        return
    rs = _load(kb_dirs)
    rows = []
    for r in rs:
        fix = r.fix
        rows.append(
            {
                "id": r.id,
                "status": r.status,
                "commit": (fix.get("commit") or "")[:12],
                "mainline": fix.get("mainline") or "",
                "title": r.title,
                "origin": r.origin,
            }
        )
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no known-bug rules")
        return
    w = max(len(x["id"]) for x in rows)
    click.echo(f"{'ID':<{w}}  {'STATUS':<8}  {'FIX':<12}  {'MAINLINE':<8}  TITLE")
    for x in rows:
        user = "" if x["origin"] == "packaged" else f"  [{x['origin']}]"
        click.echo(
            f"{x['id']:<{w}}  {x['status']:<8}  {x['commit'] or '-':<12}  {x['mainline'] or '-':<8}  {x['title']}{user}"
        )
    click.echo(f"{len(rows)} rules" + (f", {len(rs.errors)} not loaded (see above)" if rs.errors else ""))


@kb.command("show")
@click.argument("rule_id")
@_KB_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True)
def show_cmd(rule_id: str, kb_dirs: tuple[str, ...], fmt: str) -> None:
    """Everything about one rule (or one CVE of the generated tier), probe scripts included.

    \b
    Example:
      ktriage kb show nf-queue-gso-segment-null
      ktriage kb show CVE-2022-49561
    """
    rs = _load(kb_dirs)
    r = rs.get(rule_id)
    if r is None and rule_id.upper().startswith("CVE-"):
        from ktriage.kb.cve_cli import show_cve

        show_cve(rule_id, fmt)
        return
    if r is None:
        close = difflib.get_close_matches(rule_id, list(rs.rules), n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else " (see `ktriage kb list`)"
        click.echo(f"ktriage: kb: no rule {rule_id!r}{hint}", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"path": r.path, "origin": r.origin, "overrides": r.overrides, "rule": r.data},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    if fmt == "yaml":
        click.echo(yaml.safe_dump(r.data, sort_keys=False, allow_unicode=True, width=110), nl=False)
        return
    d = r.data
    out = [
        f"{r.id} ({r.status}): {r.title}",
        f"  rule file: {r.path}" + (f" (overrides {r.overrides})" if r.overrides else ""),
    ]
    if d.get("subsystem"):
        out.append(f"  subsystem: {d['subsystem']}")
    if d.get("summary"):
        out += ["", "summary:"] + ["  " + line for line in _wrap(" ".join(str(d["summary"]).split()))]
    sig = d.get("signature") or {}
    out += ["", "signature:"]
    for key in ("kinds", "guilty", "any_frames"):
        if sig.get(key):
            out.append(f"  {key}: {', '.join(sig[key])}")
    if sig.get("frames"):
        out.append(
            "  frames (in order): "
            + " > ".join(f["function"] + (f" [{f['module']}]" if f.get("module") else "") for f in sig["frames"])
        )
    for rx in sig.get("related_events") or []:
        out.append(f"  related event: /{rx}/")
    if sig.get("title_regex"):
        out.append(f"  title: /{sig['title_regex']}/")
    for f in sig.get("forms") or []:
        what = "; ".join(f"{key} {', '.join(f[key])}" for key in ("kinds", "guilty", "any_frames") if f.get(key))
        out.append(f"  form '{f['name']}': {what}")
        out.append(f"    evidence: {' '.join(str(f['evidence']).split())}")
    k = sig.get("kernel") or {}
    if k:
        out.append(f"  kernel: introduced {k.get('introduced') or '?'}, fixed {k.get('fixed') or '?'}")
    fix = d.get("fix") or {}
    if fix:
        out += ["", "fix:"]
        for key in ("commit", "subject", "mainline", "fixes", "fixes_release"):
            if fix.get(key):
                out.append(f"  {key}: {fix[key]}")
        if fix.get("stable"):
            out.append(f"  stable: {', '.join(fix['stable'])}")
        if fix.get("companions"):
            out.append(f"  companions: {', '.join(fix['companions'])}")
    if d.get("distros"):
        out += ["", "distros:"]
        for e in d["distros"]:
            what = (
                f"fixed in {e['fixed_in']}" if e.get("fixed_in") else f"not fixed through {e.get('not_fixed_through')}"
            )
            out.append(f"  {e['distro']}: {what}" + (f"  ({e['reference']})" if e.get("reference") else ""))
    if d.get("cve"):
        out += ["", f"cve: {', '.join(d['cve'])}"]
    for i, w in enumerate(d.get("workarounds") or [], 1):
        if i == 1:
            out += ["", "workarounds:"]
        out.append(f"  {i}. {w.get('title', '')}" + ("  [needs a reboot]" if w.get("reboot") else ""))
        out.append(f"     how:  {w.get('how', '')}")
        if w.get("cost"):
            out.append(f"     cost: {w['cost']}")
    probe = d.get("probe") or {}
    for tool in ("bpftrace", "systemtap"):
        if probe.get(tool):
            out += ["", f"probe ({tool}):"] + ["  " + line for line in str(probe[tool]).rstrip().splitlines()]
    if d.get("references"):
        out += ["", "references:"] + [f"  {x}" for x in d["references"]]
    for key in ("examples", "negative_examples"):
        if d.get(key):
            out += ["", f"{key.replace('_', ' ')}:"] + [f"  {e.get('file')}  ({e.get('source', '')})" for e in d[key]]
    click.echo("\n".join(out))


def _wrap(text: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


@kb.command("lint")
@_KB_OPTION
@click.option("--no-examples", is_flag=True, help="Only validate the files; do not run the examples.")
def lint_cmd(kb_dirs: tuple[str, ...], no_examples: bool) -> None:
    """Validate every rule file and prove every rule with its examples (exit 1 on problems).

    \b
    Example:
      ktriage kb lint --kb ./my-rules
    """
    from ktriage.kb.lint import lint

    res = lint(list(kb_dirs), check_examples_=not no_examples)
    for n in res.notes:
        click.echo(f"note: {n}")
    for p in res.problems:
        click.echo(p)
    summary = f"{res.files} rule file(s), {len(res.rules)} valid, {len(res.problems)} problem(s)"
    click.echo(summary, err=True)
    sys.exit(1 if res.problems else 0)


def _register() -> None:
    from ktriage.kb.cve_cli import check_cmd, fixed_cmd, import_cve, update

    for cmd in (import_cve, update, fixed_cmd, check_cmd):
        kb.add_command(cmd)


_register()
