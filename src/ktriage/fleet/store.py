"""FleetStore: the one object the CLI and the HTTP server use to write and read the fleet's crashes.

Inputs go through ktriage's own pipeline (`ktriage.pipeline.analyze_paths`) and are stored as the
`ktriage.report/1` JSON it writes; `ktriage.report/1` files are read as reports. Nothing here parses a
crash itself.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ktriage.fleet import bucketing, notify, queries, tokens
from ktriage.fleet.db import default_url, make_engine, migrate, session_factory
from ktriage.fleet.ingest import Pending, ingest_crash, utcnow
from ktriage.fleet.models import Setting, cut
from ktriage.fleet.queries import naive
from ktriage.fleet.scrub import Scrubber
from ktriage.fleet.types import (
    BucketDetail,
    BucketFilter,
    BucketSummary,
    CrashDetail,
    CrashSummary,
    IngestResult,
    IngestSummary,
    RebucketSummary,
)
from ktriage.inputs import InputError

__all__ = ["FleetStore", "is_report_json", "validate_report"]

T = TypeVar("T")
RETRIES = 8
SCHEMA = "ktriage.report/1"


def is_report_json(head: bytes) -> bool:
    """Whether data starts like a `ktriage.report/1` document (cheap test before parsing it)."""
    h = head.lstrip()[:4096]
    return h.startswith(b"{") and b'"schema"' in h and SCHEMA.encode() in h


@functools.cache
def _validator() -> Any:
    import jsonschema

    path = Path(__file__).resolve().parent.parent / "schema" / "report-1.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def validate_report(d: Any, name: str) -> dict[str, Any]:
    """A report from a machine is checked against the `ktriage.report/1` schema before anything is stored:
    the store then relies on the types (a release is a string, frames are objects). InputError, one line."""
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise InputError(f"{name}: JSON but not a {SCHEMA} report")
    err = next(iter(_validator().iter_errors(d)), None)
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "the document"
        msg = " ".join(str(err.message).split())[:200]
        raise InputError(f"{name}: malformed {SCHEMA} report at {where}: {msg}")
    return d


def _load_report(data: bytes, name: str) -> dict[str, Any]:
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InputError(f"{name}: malformed JSON report: {e}") from None
    return validate_report(d, name)


def _stamps(report: dict[str, Any]) -> list[str | None]:
    """Each crash's log timestamp, read from the input it came from (text logs only; else None)."""
    from ktriage.fleet.facts import log_times

    want: dict[str, set[int]] = {}
    for c in report["crashes"]:
        src = c.get("source") or {}
        if src.get("format") == "log" and src.get("path") not in (None, "-"):
            want.setdefault(src["path"], set()).add(int(src.get("first_line") or 0))
    got: dict[str, dict[int, str]] = {}
    for path, lines in want.items():
        try:
            got[path] = log_times(path, lines)
        except (OSError, ValueError, EOFError, InputError):
            got[path] = {}
    out: list[str | None] = []
    for c in report["crashes"]:
        src = c.get("source") or {}
        out.append(got.get(src.get("path") or "", {}).get(int(src.get("first_line") or 0)))
    return out


def _who(who: str) -> str:
    return cut(who, 200) or "unknown"


def _host_of(crash: dict[str, Any], host: str | None) -> str | None:
    if host:
        return host
    node = (crash.get("system") or {}).get("NODENAME")
    return str(node) if node else None


class FleetStore:
    def __init__(
        self,
        engine: Engine,
        *,
        scrub_key: bytes | None = None,
        max_reports_per_bucket: int = 20,
        webhook: str | None = None,
    ) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self._scrub_key = scrub_key
        self.max_reports = max_reports_per_bucket
        self.webhook = webhook
        self.notifier = notify.Notifier(webhook)  # sends off the request path, drained by close()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        scrub_key: bytes | None = None,
        max_reports_per_bucket: int = 20,
        webhook: str | None = None,
    ) -> FleetStore:
        """Open (and migrate to the newest schema) the store at `url`, $KTRIAGE_DB, or the user's default."""
        engine = make_engine(url or default_url())
        migrate(engine)
        return cls(engine, scrub_key=scrub_key, max_reports_per_bucket=max_reports_per_bucket, webhook=webhook)

    def close(self) -> None:
        """Send the webhook events still queued (bounded, see notify.Notifier.close), then release the pool."""
        self.notifier.close()
        self.engine.dispose()

    def __enter__(self) -> FleetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ transactions

    def _write(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction, retried when a concurrent writer won a race (unique key) or
        the database asked to retry (lock timeout, serialization failure)."""
        for attempt in range(RETRIES):
            try:
                with self.sessions.begin() as s:
                    return fn(s)
            except (IntegrityError, OperationalError):
                if attempt == RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[Session], T]) -> T:
        with self.sessions() as s:
            return fn(s)

    def scrub_key(self) -> bytes:
        """The key of --scrub's keyed hashes: given, else $KTRIAGE_SCRUB_KEY, else one kept in the store."""
        if self._scrub_key is None:
            env = os.environ.get("KTRIAGE_SCRUB_KEY")
            if env:
                self._scrub_key = env.encode()
            else:

                def get(s: Session) -> str:
                    row = s.get(Setting, "scrub_key")
                    if row is None:
                        row = Setting(name="scrub_key", value=secrets.token_hex(32))
                        s.add(row)
                    return row.value

                self._scrub_key = bytes.fromhex(self._write(get))
        return self._scrub_key

    # ------------------------------------------------------------------------------ ingest

    def ingest_report(
        self,
        report: dict[str, Any],
        *,
        host: str | None = None,
        origin: str = "cli",
        scrub: bool = False,
        seen: datetime | None = None,
    ) -> list[IngestResult]:
        """Store every crash of a `ktriage.report/1` dict, in one transaction; returns one result per crash."""
        return self._ingest(report, host=host, origin=origin, scrub=scrub, seen=seen, stamps=None)

    def _ingest(
        self,
        report: dict[str, Any],
        *,
        host: str | None,
        origin: str,
        scrub: bool,
        seen: datetime | None,
        stamps: list[str | None] | None,
    ) -> list[IngestResult]:
        """ingest_report, with the log timestamp of each crash when ktriage read it from a log here."""
        if stamps is None:  # not written by this process's pipeline: check it
            validate_report(report, "report")
        when = naive(seen) if seen else utcnow()
        items: list[tuple[dict[str, Any], dict[str, Any], str | None, str | None]] = []
        for c in report.get("crashes") or []:
            path = (c.get("source") or {}).get("path")
            inputs = [i for i in report.get("inputs") or [] if i.get("path") == path] or list(
                report.get("inputs") or []
            )
            one = {"schema": SCHEMA, "inputs": inputs, "crashes": [c], "notes": list(report.get("notes") or [])}
            h = _host_of(c, host)
            if scrub:
                sc = Scrubber(self.scrub_key(), [x for x in (h, (c.get("system") or {}).get("NODENAME")) if x])
                one, h = sc.value(one), sc.host(h)
            items.append((one["crashes"][0], one, h, stamps[len(items)] if stamps else None))
        if not items:
            return []

        def txn(s: Session) -> tuple[list[IngestResult], Pending]:
            pending = Pending()
            res = [
                ingest_crash(
                    s,
                    c,
                    one,
                    host=h,
                    origin=origin,
                    seen=when,
                    keep_reports=self.max_reports,
                    pending=pending,
                    log_time=t,
                )
                for c, one, h, t in items
            ]
            return res, pending

        results, pending = self._write(txn)
        self.notifier.submit(pending.events)
        return results

    def ingest_bytes(
        self,
        data: bytes,
        name: str,
        *,
        host: str | None = None,
        origin: str = "api",
        scrub: bool = False,
        seen: datetime | None = None,
    ) -> list[IngestResult]:
        """A raw log / dmesg / journal export / crash output / vmcore, or a report JSON, as bytes.
        Raises InputError (one line) for what cannot be read."""
        name = os.path.basename(name or "upload") or "upload"
        if is_report_json(data[:4096]):
            return self.ingest_report(_load_report(data, name), host=host, origin=origin, scrub=scrub, seen=seen)
        from ktriage.pipeline import Options, analyze_paths
        from ktriage.render.json_out import report_dict

        with tempfile.TemporaryDirectory(prefix="ktriage-fleet-") as tmp:
            safe = re.sub(r"[^\w.+-]", "_", name)[:100] or "upload"
            path = os.path.join(tmp, safe)
            with open(path, "wb") as f:
                f.write(data)
            report = report_dict(analyze_paths([path], Options()))
            stamps = _stamps(report)
        text = json.dumps(report, ensure_ascii=False).replace(json.dumps(path)[1:-1], json.dumps(name)[1:-1])
        report = json.loads(text)
        bad = [i for i in report["inputs"] if i["status"] == "error"]
        if bad:
            raise InputError(bad[0]["error"] or f"{name}: could not be read")
        return self._ingest(report, host=host, origin=origin, scrub=scrub, seen=seen, stamps=stamps)

    def ingest_paths(self, paths: list[str], *, host: str | None = None, scrub: bool = False) -> IngestSummary:
        """Files and directories as `ktriage analyze` takes them; report JSON files read as reports."""
        from ktriage.inputs import expand
        from ktriage.pipeline import Options, analyze_paths
        from ktriage.render.json_out import report_dict

        out = IngestSummary()
        raw: list[str] = []
        for p in expand(list(paths)):
            out.inputs += 1
            head = b""
            if p != "-" and os.path.isfile(p):
                try:
                    with open(p, "rb") as f:
                        head = f.read(4096)
                except OSError:
                    head = b""
            if head and is_report_json(head):
                try:
                    with open(p, "rb") as f:
                        out.results += self.ingest_report(
                            _load_report(f.read(), p), host=host, origin="cli", scrub=scrub
                        )
                except (InputError, OSError) as e:
                    out.errors.append(str(e))
                continue
            raw.append(p)
        if raw:
            report = report_dict(analyze_paths(raw, Options()))
            for i in report["inputs"]:
                if i["status"] != "ok":
                    out.errors.append(i["error"] or f"{i['path']}: could not be read")
            if report["crashes"]:
                out.results += self._ingest(
                    report, host=host, origin="cli", scrub=scrub, seen=None, stamps=_stamps(report)
                )
        return out

    # ------------------------------------------------------------------------------ reads

    def list_buckets(
        self, flt: BucketFilter, *, sort: str = "last_seen", desc: bool = True, limit: int = 50, offset: int = 0
    ) -> tuple[list[BucketSummary], int]:
        return self._read(lambda s: queries.list_buckets(s, flt, sort=sort, desc=desc, limit=limit, offset=offset))

    def get_bucket(self, bucket_id: str) -> BucketDetail | None:
        return self._read(lambda s: queries.get_bucket(s, bucket_id))

    def bucket_crashes(self, bucket_id: str, *, limit: int = 50, offset: int = 0) -> tuple[list[CrashSummary], int]:
        return self._read(lambda s: queries.bucket_crashes(s, bucket_id, limit=limit, offset=offset))

    def get_crash(self, crash_id: int) -> CrashDetail | None:
        return self._read(lambda s: queries.get_crash(s, crash_id))

    # ------------------------------------------------------------------------------ by hand

    def merge(self, a: str, b: str, *, who: str, why: str) -> int:
        return self._write(lambda s: bucketing.merge(s, a, b, who=_who(who), why=why))

    def split(self, bucket_id: str, crash_ids: list[int], *, who: str, why: str) -> str:
        return self._write(lambda s: bucketing.split(s, bucket_id, crash_ids, who=_who(who), why=why))

    def undo(self, action_id: int, *, who: str) -> None:
        self._write(lambda s: bucketing.undo(s, action_id, who=_who(who)))

    def rebucket(self, *, kb_dirs: list[str] | None = None) -> RebucketSummary:
        """Re-read every stored report with today's rules (plus the users' own rule directories)."""
        return self._write(lambda s: bucketing.rebucket(s, kb_dirs=tuple(kb_dirs or ())))

    # ------------------------------------------------------------------------------ tokens

    def create_token(self, name: str) -> str:
        return self._write(lambda s: tokens.create_token(s, name))

    def revoke_token(self, name: str) -> None:
        self._write(lambda s: tokens.revoke_token(s, name))

    def check_token(self, secret: str) -> str | None:
        return self._read(lambda s: tokens.check_token(s, secret))
