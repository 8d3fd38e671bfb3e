"""`ktriage fleet ...`: the fleet store from the command line (ingest, buckets, show, merge, split, undo,
rebucket, tokens, serve). SQLAlchemy and the server load only when a command runs, so `ktriage fleet --help`
works without the `fleet` extra and says what to install when it is missing."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ktriage.fleet.store import FleetStore
    from ktriage.fleet.types import BucketDetail

EXIT_OK, EXIT_USAGE, EXIT_INPUT, EXIT_INTERNAL = 0, 2, 3, 70

db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    help="SQLAlchemy URL (default: $KTRIAGE_DB, else a SQLite file in $XDG_DATA_HOME/ktriage).",
)


def _die(msg: str, code: int = EXIT_INPUT) -> None:
    click.echo(f"ktriage: {msg}", err=True)
    sys.exit(code)


@contextmanager
def _store(db: str | None, **kw: Any) -> Iterator[FleetStore]:
    """The store, or one line on stderr: the extra not installed, the database unreachable, a refused request."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from ktriage.fleet.bucketing import FleetError
        from ktriage.fleet.store import FleetStore
    except ImportError as e:
        _die(f"the fleet store needs the fleet extra (pip install 'ktriage[fleet]'): {e}", EXIT_USAGE)
        raise  # unreachable; for the type checker
    try:
        store = FleetStore.open(db, **kw)
    except (SQLAlchemyError, OSError, ValueError) as e:
        _die(f"cannot open the fleet database: {str(e).splitlines()[0]}")
        raise
    try:
        yield store
    except FleetError as e:
        _die(str(e), EXIT_USAGE)
    except SQLAlchemyError as e:
        _die(f"database error: {str(e).splitlines()[0]}")
    finally:
        store.close()


def _who(who: str | None) -> str:
    if who:
        return who
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def _fixed_word(v: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[v]


@click.group()
def fleet() -> None:
    """The fleet store: every crash of every machine, grouped into buckets (needs the `fleet` extra)."""


@fleet.command()
@db_option
@click.option("--host", help="The machine these inputs come from (default: the dump's NODENAME, else none).")
@click.option(
    "--scrub", is_flag=True, help="Replace host names, IP/MAC addresses and /home/NAME paths by keyed hashes."
)
@click.argument("paths", nargs=-1, required=True)
def ingest(db: str | None, host: str | None, scrub: bool, paths: tuple[str, ...]) -> None:
    """Store the crashes of logs, vmcores, crash output or ktriage JSON reports (files, directories, -)."""
    with _store(db) as store:
        summary = store.ingest_paths(list(paths), host=host, scrub=scrub)
        for r in summary.results:
            kb = f"; known bug {r.known_bug}, this kernel fixed: {_fixed_word(r.fixed)}" if r.known_bug else ""
            if r.duplicate:
                click.echo(f"already stored: crash {r.crash_id} in bucket {r.bucket_id}: {r.title}")
            else:
                nb = " (new bucket)" if r.bucket_new else ""
                click.echo(f"new: crash {r.crash_id} -> bucket {r.bucket_id}{nb} [{r.state}]: {r.title}{kb}")
        for e in summary.errors:
            click.echo(f"unreadable: {e}")
        click.echo(
            f"{len(summary.new)} new, {len(summary.duplicates)} already stored, {len(summary.errors)} unreadable "
            f"({summary.inputs} inputs)",
            err=True,
        )
    sys.exit(EXIT_INPUT if summary.errors else EXIT_OK)


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _summary_dict(b: Any) -> dict[str, Any]:
    return {
        "id": b.id,
        "title": b.title,
        "kind": b.kind,
        "count": b.count,
        "hosts": b.hosts,
        "kernels": b.kernels,
        "first_seen": b.first_seen.isoformat(),
        "last_seen": b.last_seen.isoformat(),
        "state": b.state,
        "state_reason": b.state_reason,
        "known_bug": b.known_bug,
        "fixed_in": b.fixed_in,
        "growth": b.growth,
        "distros": b.distros,
    }


@fleet.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--kind", help="Only buckets of this crash kind.")
@click.option("--kernel", help="Only buckets with a crash on this kernel release.")
@click.option("--since", help="Only buckets seen on or after this date (YYYY-MM-DD).")
@click.option("--state", type=click.Choice(["new", "known", "fixed", "regressed"]))
@click.option("--sort", type=click.Choice(["count", "last_seen", "first_seen", "growth", "title"]), default="last_seen")
@click.option("--limit", type=int, default=1000, show_default=True)
def buckets(
    db: str | None,
    fmt: str,
    kind: str | None,
    kernel: str | None,
    since: str | None,
    state: str | None,
    sort: str,
    limit: int,
) -> None:
    """One row per bucket: id, title, kind, count, hosts, kernels, first/last seen, state, known bug, fixed-in."""
    from ktriage.fleet.types import BucketFilter

    flt = BucketFilter(kind=kind, kernel=kernel, since=_parse_since(since), state=state)
    with _store(db) as store:
        rows, total = store.list_buckets(flt, sort=sort, desc=sort != "title", limit=limit)
    if fmt == "json":
        click.echo(
            json.dumps({"total": total, "buckets": [_summary_dict(b) for b in rows]}, indent=2, ensure_ascii=False)
        )
        return
    for b in rows:
        kernels = ",".join(b.kernels[:3]) + (f",+{len(b.kernels) - 3}" if len(b.kernels) > 3 else "")
        kb = f"  known: {b.known_bug}" + (f" (fixed in {b.fixed_in})" if b.fixed_in else "") if b.known_bug else ""
        click.echo(
            f"{b.id}  {b.state:<9} {b.count:>6}x {b.hosts:>4} hosts  {b.kind:<14} {b.title}\n"
            f"    kernels {kernels or '?'}  first {b.first_seen:%Y-%m-%d %H:%M}  last {b.last_seen:%Y-%m-%d %H:%M}{kb}\n"
            f"    {b.state}: {b.state_label.split(' — ', 1)[-1]}"
        )
    click.echo(f"{len(rows)} of {total} buckets", err=True)


def _show_text(d: BucketDetail) -> str:
    b = d.summary
    out = [
        f"bucket {b.id}: {b.title}",
        f"  kind {b.kind}, state {b.state} (generation {d.generation}), {b.count} crashes on {b.hosts} hosts",
        f"  {b.state}: {b.state_reason}",
        f"  first seen {b.first_seen:%Y-%m-%d %H:%M}, last seen {b.last_seen:%Y-%m-%d %H:%M}, growth {b.growth:+d}",
    ]
    if b.known_bug:
        out.append(f"  known bug {b.known_bug}" + (f", fixed in {b.fixed_in}" if b.fixed_in else ", no fix recorded"))
    if d.workaround:
        out.append(f"  workaround: {d.workaround}")
    out.append("  signatures: " + ", ".join(d.signatures))
    for a in d.aliases:
        out.append(f"  also seen as: {a}")
    out.append("kernels:")
    for k in d.per_kernel:
        fix = {True: "has the fix", False: "lacks the fix", None: "fix unknown"}[k.has_fix]
        pf = f", probably fixed since {k.probably_fixed_since}" if k.probably_fixed_since else ""
        out.append(f"  {k.release:<40} {k.count:>6}  {k.first_seen:%Y-%m-%d} .. {k.last_seen:%Y-%m-%d}  {fix}{pf}")
    out.append("per day:")
    out += [f"  {day.isoformat()} {n:>6}" for day, n in d.per_day]
    for unit, head in (("week", "per kernel and week (from Monday):"), ("month", "per kernel and month:")):
        out.append(head)
        fmt_start = "%Y-%m" if unit == "month" else "%Y-%m-%d"
        out += [f"  {p.release:<40} {p.start.strftime(fmt_start):<10} {p.count:>6}" for p in d.kernel_periods(unit)]
    if d.hosts:
        out.append("hosts:")
        out += [f"  {h:<40} {n:>6}" for h, n in d.hosts]
    if d.history:
        out.append("history:")
        for h in d.history:
            undone = f" (undone by {h['undone_by']})" if h.get("undone_by") else ""
            other = f" {h['other']}" if h.get("other") else ""
            out.append(
                f"  #{h['id']} {h['when']:%Y-%m-%d %H:%M} {h['action']}{other} by {h['who']}: {h['why']}{undone}"
            )
    if d.representative:
        from ktriage.model import Report
        from ktriage.render.json_in import crash_report_from_dict
        from ktriage.render.text import render

        out.append("representative report:")
        out.append(render(Report(crashes=[crash_report_from_dict(d.representative)]), color=False))
    return "\n".join(out)


@fleet.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.argument("bucket")
def show(db: str | None, fmt: str, bucket: str) -> None:
    """A bucket: its representative report, per-kernel and per-day counts, hosts, history."""
    with _store(db) as store:
        d = store.get_bucket(bucket)
    if d is None:
        _die(f"no bucket {bucket}", EXIT_USAGE)
        return
    if fmt == "json":
        doc = {
            "bucket": _summary_dict(d.summary),
            "generation": d.generation,
            "workaround": d.workaround,
            "signatures": d.signatures,
            "aliases": d.aliases,
            "per_kernel": [
                {
                    "release": k.release,
                    "count": k.count,
                    "first_seen": k.first_seen.isoformat(),
                    "last_seen": k.last_seen.isoformat(),
                    "has_fix": k.has_fix,
                    "probably_fixed_since": k.probably_fixed_since,
                }
                for k in d.per_kernel
            ],
            "per_day": [[day.isoformat(), n] for day, n in d.per_day],
            **{
                f"per_kernel_{unit}": [
                    {"release": p.release, "start": p.start.isoformat(), "count": p.count}
                    for p in d.kernel_periods(unit)
                ]
                for unit in ("day", "week", "month")
            },
            "hosts": [list(h) for h in d.hosts],
            "history": [{**h, "when": h["when"].isoformat()} for h in d.history],
            "representative": d.representative,
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        click.echo(_show_text(d))


@fleet.command()
@db_option
@click.argument("a")
@click.argument("b")
@click.option("--who", help="Who merges (default: the user).")
@click.option("--why", required=True, help="Why these are one bug.")
def merge(db: str | None, a: str, b: str, who: str | None, why: str) -> None:
    """Merge bucket B into bucket A (undoable: prints the action id)."""
    with _store(db) as store:
        act = store.merge(a, b, who=_who(who), why=why)
    click.echo(f"merged {b} into {a}: action {act} (ktriage fleet undo {act})")


@fleet.command()
@db_option
@click.argument("bucket")
@click.option("--crash", "crashes", type=int, multiple=True, required=True, help="A crash id to move (repeatable).")
@click.option("--who", help="Who splits (default: the user).")
@click.option("--why", required=True, help="Why these crashes are another bug.")
def split(db: str | None, bucket: str, crashes: tuple[int, ...], who: str | None, why: str) -> None:
    """Move crashes out of a bucket into a new one (kept there by later rebuckets)."""
    with _store(db) as store:
        new = store.split(bucket, list(crashes), who=_who(who), why=why)
    click.echo(f"split {len(crashes)} crash(es) of {bucket} into {new}")


@fleet.command()
@db_option
@click.argument("action", type=int)
@click.option("--who", help="Who undoes (default: the user).")
def undo(db: str | None, action: int, who: str | None) -> None:
    """Undo a merge or a split by its action id (see `fleet show`'s history)."""
    with _store(db) as store:
        store.undo(action, who=_who(who))
    click.echo(f"undid action {action}")


@fleet.command()
@db_option
@click.option(
    "--kb",
    "kb_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Extra directory of known-bug rules (repeatable).",
)
def rebucket(db: str | None, kb_dirs: tuple[str, ...]) -> None:
    """Re-read every stored report with today's grouping rules and knowledge base (counts, history and hand
    merges are kept)."""
    with _store(db) as store:
        r = store.rebucket(kb_dirs=list(kb_dirs))
    click.echo(
        f"{r.crashes} reports re-read, {r.signatures_added} signatures added, {len(r.merged)} buckets merged, "
        f"{len(r.state_changes)} state changes; {r.without_report} crashes without a kept report stay put"
    )
    for a, b in r.merged:
        click.echo(f"  merged {a} into {b}")
    for bid, old, new in r.state_changes:
        click.echo(f"  {bid}: {old} -> {new}")
    for note in r.notes:
        click.echo(f"ktriage: {note}", err=True)


@fleet.group()
def token() -> None:
    """Write tokens for machines submitting over HTTP (stored hashed)."""


@token.command("create")
@db_option
@click.argument("name")
def token_create(db: str | None, name: str) -> None:
    """Create a token; its secret is printed once."""
    with _store(db) as store:
        secret = store.create_token(name)
    click.echo(secret)


@token.command("revoke")
@db_option
@click.argument("name")
def token_revoke(db: str | None, name: str) -> None:
    """Revoke a token: its machine's submissions get 401 from now on."""
    with _store(db) as store:
        store.revoke_token(name)
    click.echo(f"revoked {name}")


@fleet.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--scrub", is_flag=True, help="Scrub host names, addresses and user paths of submitted reports.")
@click.option("--webhook", metavar="URL", help="POST a JSON message on new, regressed and growing buckets.")
@click.option("--max-body", type=int, default=32 << 20, show_default=True, help="Largest submission in bytes.")
def serve(db: str | None, host: str, port: int, scrub: bool, webhook: str | None, max_body: int) -> None:
    """The HTTP API (/api/v1) and the dashboard."""
    try:
        from ktriage.server.app import run
    except ImportError as e:
        _die(f"the server needs the fleet extra (pip install 'ktriage[fleet]'): {e}", EXIT_USAGE)
        return
    run(db, host=host, port=port, scrub=scrub, webhook=webhook, max_body=max_body)
