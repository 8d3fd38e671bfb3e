"""Crash dicts into rows: one transaction per submission, idempotent by crash identity.

Each crash goes to the bucket its signature (ktriage's bucket id) leads to, or founds one. The bucket's
row is locked for the update (PostgreSQL: SELECT ... FOR UPDATE; SQLite writers are serialized by
BEGIN IMMEDIATE), so counts, states and generations stay right under concurrent writers; a race on a
new bucket or identity surfaces as an IntegrityError and the whole submission is retried, where the
second attempt finds what the other writer committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ktriage.fleet.facts import KBFacts, crash_identity, crash_signature, kb_facts
from ktriage.fleet.models import TITLE_MAX, Action, Bucket, BucketAlias, CrashReportRow, CrashRow, Signature, cut
from ktriage.fleet.notify import THRESHOLDS
from ktriage.fleet.types import IngestResult

__all__ = ["Pending", "ingest_crash", "next_state", "prune_reports", "utcnow"]


def utcnow() -> datetime:
    """Naive UTC: what every DateTime column holds (SQLite keeps no zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Pending:
    """Webhook events of a transaction, sent only once it has committed."""

    events: list[dict[str, Any]] = field(default_factory=list)


def next_state(
    state: str, generation: int, facts_known: str | None, recorded: bool, fixed: bool | None
) -> tuple[str, int]:
    """The bucket's state after one more crash (syzbot: a crash after the fix starts a new generation).

    new -> known (a known bug matched) -> fixed (the rule records a fix) -> regressed (this crash's kernel
    carries the fix). regressed stays until a person or a rebucket with another verdict changes it."""
    if fixed is True:
        if state != "regressed":
            return "regressed", generation + (1 if state == "fixed" else 0)
        return state, generation
    if state == "regressed":
        return state, generation
    if facts_known is None:  # this crash matched no known bug: it says nothing about the fix
        return state, generation
    return ("fixed" if recorded else "known"), generation


def _event(kind: str, b: Bucket, **extra: Any) -> dict[str, Any]:
    return {
        "event": kind,
        "bucket": b.id,
        "title": b.title,
        "kind": b.kind,
        "count": b.count,
        "state": b.state,
        "known_bug": b.known_bug,
        "generation": b.generation,
        **extra,
    }


def prune_reports(s: Session, bucket_id: str, keep: int) -> None:
    """Keep the first report of a bucket and the most recent `keep - 1`; drop the text of the others
    (their crash rows, the counts, stay)."""
    kept = s.scalars(
        select(CrashRow.id).where(CrashRow.bucket_id == bucket_id, CrashRow.report_kept.is_(True)).order_by(CrashRow.id)
    ).all()
    if len(kept) <= keep:
        return
    drop = list(kept[1 : len(kept) - (keep - 1)]) if keep > 1 else list(kept[1:])
    s.execute(delete(CrashReportRow).where(CrashReportRow.crash_id.in_(drop)))
    s.execute(update(CrashRow).where(CrashRow.id.in_(drop)).values(report_kept=False))


def _resolve(s: Session, bucket_id: str) -> str:
    """A bucket merged into another stands for that one (chains are short: merges re-point signatures)."""
    for _ in range(32):
        into = s.scalar(select(Bucket.merged_into).where(Bucket.id == bucket_id))
        if not into:
            return bucket_id
        bucket_id = into
    return bucket_id


def ingest_crash(
    s: Session,
    crash: dict[str, Any],
    report: dict[str, Any],
    *,
    host: str | None,
    origin: str,
    seen: datetime,
    keep_reports: int,
    pending: Pending,
    log_time: str | None = None,
) -> IngestResult:
    """Store one crash (inside the caller's transaction)."""
    key = crash_identity(crash, host)
    log_time = cut(log_time, 40)
    identity = hashlib.sha256(f"{key}\x00{log_time or ''}".encode()).hexdigest()
    facts = kb_facts(crash)
    title = str(crash.get("title") or "?")[:TITLE_MAX]
    kind = str(crash.get("kind") or "unknown")[:32]
    for old_id, old_bucket, old_time in s.execute(
        select(CrashRow.id, CrashRow.bucket_id, CrashRow.log_time).where(CrashRow.content_key == key)
    ):
        # the same crash unless both were read from logs that put it at different times (two boots)
        if old_time is None or log_time is None or old_time == log_time:
            b = s.get(Bucket, _resolve(s, old_bucket))
            assert b is not None
            return _result(old_id, b, False, True, title, kind, facts)

    sig = crash_signature(crash)
    bucket_id = s.scalar(select(Signature.bucket_id).where(Signature.hash == sig))
    now = utcnow()
    new_bucket = bucket_id is None
    if bucket_id is None:
        b = Bucket(
            id=sig,
            title=title,
            kind=kind,
            state="new",
            generation=1,
            count=0,
            first_seen=seen,
            last_seen=seen,
            notified=0,
        )
        s.add(b)
        s.add(Signature(hash=sig, bucket_id=sig, added_at=now, origin="ingest"))
        s.add(
            Action(
                kind="created",
                bucket_id=sig,
                who=cut(origin, 200) or "",
                why="first crash with this signature",
                at=now,
                data="{}",
            )
        )
        s.flush()
    else:
        b = s.scalars(select(Bucket).where(Bucket.id == bucket_id).with_for_update()).one()
        if b.merged_into:  # a signature left behind by a merge (merges re-point them; kept for safety)
            b = s.scalars(select(Bucket).where(Bucket.id == _resolve(s, b.id)).with_for_update()).one()

    b.count = (b.count or 0) + 1
    b.first_seen = min(b.first_seen, seen)
    b.last_seen = max(b.last_seen, seen)
    if facts.known_bug and b.known_bug != facts.known_bug:
        b.known_bug = cut(facts.known_bug, 200)
    if facts.known_bug:
        b.fixed_in = cut(facts.fixed_in, 500) or b.fixed_in
        b.workaround = facts.workaround or b.workaround
    before = b.state
    b.state, b.generation = next_state(b.state, b.generation, facts.known_bug, facts.fix_recorded, facts.fixed)
    if title != b.title and not s.get(BucketAlias, (b.id, title)):
        s.add(BucketAlias(bucket_id=b.id, title=title))

    row = CrashRow(
        identity=identity,
        content_key=key,
        log_time=log_time,
        bucket_id=b.id,
        signature=sig,
        title=title,
        kind=kind,
        host=cut(host, 255),
        kernel=cut((crash.get("kernel") or {}).get("release"), 200),
        distro=cut((crash.get("kernel") or {}).get("distro"), 64),
        arch=cut(crash.get("arch"), 16),
        seen=seen,
        ingested_at=now,
        origin=cut(origin, 200) or "",
        known_bug=cut(facts.known_bug, 200),
        fixed=facts.fixed,
        fixed_in=cut(facts.fixed_in, 500),
        workaround=facts.workaround,
        generation=b.generation,
        pinned=False,
        report_kept=True,
    )
    s.add(row)
    s.flush()
    s.add(CrashReportRow(crash_id=row.id, body=json.dumps(report, ensure_ascii=False)))
    if before != b.state and not new_bucket:
        why = {
            "regressed": f"crash {row.id} on {row.kernel}, a kernel that carries the fix ({b.fixed_in or '?'})",
            "fixed": f"known bug {b.known_bug}: a fix is recorded ({b.fixed_in or '?'})",
            "known": f"matched to known bug {b.known_bug}",
        }.get(b.state, "")
        data = json.dumps({"from": before, "to": b.state, "crash": row.id, "generation": b.generation})
        s.add(Action(kind="state", bucket_id=b.id, who=cut(origin, 200) or "", why=why, at=now, data=data))
        if b.state == "regressed":
            pending.events.append(_event("bucket.regressed", b, crash=row.id, kernel=row.kernel))
    if new_bucket:
        pending.events.append(_event("bucket.created", b, crash=row.id))
    for t in THRESHOLDS:
        if b.count >= t > (b.notified or 0):
            b.notified = t
            pending.events.append(_event("bucket.threshold", b, threshold=t))
    s.flush()
    if 0 < keep_reports < b.count:
        prune_reports(s, b.id, keep_reports)
    return _result(row.id, b, new_bucket, False, title, kind, facts)


def _result(crash_id: int, b: Bucket, new: bool, dup: bool, title: str, kind: str, f: KBFacts) -> IngestResult:
    return IngestResult(
        crash_id=crash_id,
        bucket_id=b.id,
        bucket_new=new,
        duplicate=dup,
        title=title,
        kind=kind,
        known_bug=f.known_bug or b.known_bug,
        fixed=f.fixed,
        fixed_in=f.fixed_in or b.fixed_in,
        workaround=f.workaround or b.workaround,
        state=b.state,
    )


def bucket_count(s: Session, bucket_id: str) -> int:
    return int(s.scalar(select(func.count()).select_from(CrashRow).where(CrashRow.bucket_id == bucket_id)) or 0)
