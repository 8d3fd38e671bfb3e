"""Buckets by hand and by rules: merge, split, undo, and rebucket from the stored reports.

Every change is an `action` row (who, why, when, and what undo needs). A merge moves the merged bucket's
crashes, signatures and titles into the other and leaves the merged bucket pointing at it, so its id
still resolves; a split moves chosen crashes into a new bucket and pins them there (a rebucket leaves
pinned crashes alone). Counts are recounted from the crash rows, which are never deleted.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ktriage.fleet.ingest import utcnow
from ktriage.fleet.models import Action, Bucket, BucketAlias, CrashReportRow, CrashRow, Signature
from ktriage.fleet.queries import resolve
from ktriage.fleet.types import RebucketSummary

__all__ = ["FleetError", "derive_state", "merge", "rebucket", "recount", "split", "undo"]


class FleetError(ValueError):
    """A request the store refuses (unknown bucket, nothing to undo...); the message is one line."""


def recount(s: Session, b: Bucket) -> None:
    """count, first and last seen from the bucket's crash rows."""
    n, first, last = s.execute(
        select(func.count(), func.min(CrashRow.seen), func.max(CrashRow.seen)).where(CrashRow.bucket_id == b.id)
    ).one()
    b.count = int(n or 0)
    if first is not None:
        b.first_seen, b.last_seen = first, last


def derive_state(s: Session, b: Bucket, who: str, why: str) -> tuple[str, str] | None:
    """The bucket's known bug and state from its crashes' KB verdicts; a change is recorded in history.
    Returns (old, new) when the state changed."""
    latest = s.execute(
        select(CrashRow.known_bug, CrashRow.fixed_in, CrashRow.workaround)
        .where(CrashRow.bucket_id == b.id, CrashRow.known_bug.is_not(None))
        .order_by(CrashRow.id.desc())
        .limit(1)
    ).first()
    regressed = s.scalar(select(func.count()).where(CrashRow.bucket_id == b.id, CrashRow.fixed.is_(True)))
    b.known_bug, b.fixed_in, b.workaround = latest if latest else (None, None, None)
    if regressed:
        state = "regressed"
    elif b.known_bug is None:
        state = "new"
    else:
        state = "fixed" if b.fixed_in else "known"
    old = b.state
    if state == old:
        return None
    if state == "regressed" and old == "fixed":
        b.generation += 1
    b.state = state
    data = json.dumps({"from": old, "to": state, "generation": b.generation})
    s.add(Action(kind="state", bucket_id=b.id, who=who, why=why, at=utcnow(), data=data))
    return old, state


def _bucket(s: Session, bucket_id: str) -> Bucket:
    b = resolve(s, bucket_id)
    if b is None:
        raise FleetError(f"no bucket {bucket_id}")
    return b


def merge(s: Session, a: str, b: str, *, who: str, why: str) -> int:
    """Merge bucket `b` into bucket `a`; returns the action id (for undo)."""
    into, gone = _bucket(s, a), _bucket(s, b)
    if into.id == gone.id:
        raise FleetError(f"{a} and {b} are the same bucket")
    crashes = list(s.scalars(select(CrashRow.id).where(CrashRow.bucket_id == gone.id)))
    sigs = list(s.scalars(select(Signature.hash).where(Signature.bucket_id == gone.id)))
    have = set(s.scalars(select(BucketAlias.title).where(BucketAlias.bucket_id == into.id)))
    titles = [t for t in s.scalars(select(BucketAlias.title).where(BucketAlias.bucket_id == gone.id))]
    added = [t for t in {*titles, gone.title} if t not in have and t != into.title]
    s.execute(update(CrashRow).where(CrashRow.bucket_id == gone.id).values(bucket_id=into.id))
    s.execute(update(Signature).where(Signature.bucket_id == gone.id).values(bucket_id=into.id))
    for t in titles:
        s.delete(s.get(BucketAlias, (gone.id, t)))
    s.flush()
    for t in added:
        s.add(BucketAlias(bucket_id=into.id, title=t))
    gone.merged_into = into.id
    data = {
        "crashes": crashes,
        "signatures": sigs,
        "aliases": titles,
        "added_aliases": added,
        "state": gone.state,
        "generation": gone.generation,
    }
    act = Action(
        kind="merge", bucket_id=into.id, other_id=gone.id, who=who, why=why, at=utcnow(), data=json.dumps(data)
    )
    s.add(act)
    s.flush()
    recount(s, into)
    recount(s, gone)
    derive_state(s, into, who, f"merge of {gone.id}")
    s.flush()
    return act.id


def split(s: Session, bucket_id: str, crash_ids: list[int], *, who: str, why: str) -> str:
    """Move the given crashes of a bucket into a new bucket; returns its id."""
    src = _bucket(s, bucket_id)
    if not crash_ids:
        raise FleetError("split needs at least one crash id")
    rows = list(s.scalars(select(CrashRow).where(CrashRow.id.in_(crash_ids))))
    wrong = sorted(set(crash_ids) - {c.id for c in rows if c.bucket_id == src.id})
    if wrong:
        raise FleetError(f"crash(es) {', '.join(map(str, wrong))} not in bucket {src.id}")
    if len(rows) == src.count:
        raise FleetError(f"split would leave bucket {src.id} empty")
    now = utcnow()
    new_id = "ktm-" + hashlib.sha1(f"{src.id}\x00{sorted(crash_ids)}\x00{now.isoformat()}".encode()).hexdigest()[:16]
    first = min(rows, key=lambda c: c.id)
    nb = Bucket(
        id=new_id,
        title=first.title,
        kind=first.kind,
        state="new",
        generation=1,
        count=0,
        first_seen=first.seen,
        last_seen=first.seen,
        notified=0,
    )
    s.add(nb)
    s.flush()
    for c in rows:
        c.bucket_id, c.pinned = new_id, True
    s.flush()
    act = Action(
        kind="split",
        bucket_id=src.id,
        other_id=new_id,
        who=who,
        why=why,
        at=now,
        data=json.dumps({"crashes": sorted(crash_ids)}),
    )
    s.add(act)
    s.flush()
    recount(s, src)
    recount(s, nb)
    derive_state(s, src, who, f"split into {new_id}")
    derive_state(s, nb, who, f"split from {src.id}")
    return new_id


def undo(s: Session, action_id: int, *, who: str) -> int:
    """Reverse a merge or a split; returns the undo's own action id."""
    act = s.get(Action, action_id)
    if act is None:
        raise FleetError(f"no action {action_id}")
    if act.kind not in ("merge", "split"):
        raise FleetError(f"action {action_id} is a {act.kind}: only merges and splits can be undone")
    if act.undone_by is not None:
        raise FleetError(f"action {action_id} was already undone (by action {act.undone_by})")
    data: dict[str, Any] = json.loads(act.data or "{}")
    into, other = s.get(Bucket, act.bucket_id), s.get(Bucket, act.other_id or "")
    if into is None or other is None:
        raise FleetError(f"action {action_id}: its buckets are gone")
    if act.kind == "merge":
        sigs = data.get("signatures") or []
        # the merged bucket's crashes, and those that arrived since under its signatures
        s.execute(
            update(CrashRow)
            .where(
                CrashRow.bucket_id == into.id,
                (CrashRow.id.in_(data.get("crashes") or []))
                | (CrashRow.signature.in_(sigs) & CrashRow.pinned.is_(False)),
            )
            .values(bucket_id=other.id)
        )
        s.execute(update(Signature).where(Signature.hash.in_(sigs)).values(bucket_id=other.id))
        for t in data.get("added_aliases") or []:
            row = s.get(BucketAlias, (into.id, t))
            if row is not None:
                s.delete(row)
        s.flush()
        for t in data.get("aliases") or []:
            if s.get(BucketAlias, (other.id, t)) is None:
                s.add(BucketAlias(bucket_id=other.id, title=t))
        other.merged_into = None
        other.state, other.generation = data.get("state", other.state), data.get("generation", other.generation)
    else:
        s.execute(
            update(CrashRow)
            .where(CrashRow.id.in_(data.get("crashes") or []), CrashRow.bucket_id == other.id)
            .values(bucket_id=into.id, pinned=False)
        )
        other.merged_into = into.id
    s.flush()
    u = Action(
        kind="undo",
        bucket_id=into.id,
        other_id=other.id,
        who=who,
        why=f"undo of action {action_id} ({act.kind})",
        at=utcnow(),
        data=json.dumps({"undid": action_id}),
    )
    s.add(u)
    s.flush()
    act.undone_by = u.id
    recount(s, into)
    recount(s, other)
    derive_state(s, into, who, f"undo of action {action_id}")
    if other.merged_into is None:
        derive_state(s, other, who, f"undo of action {action_id}")
    s.flush()
    return u.id


def _reread(body: str, rules: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The stored report re-read with today's rules: (signature, crash dict with fresh known bugs, report)."""
    from ktriage.kb import match_crash
    from ktriage.logs.report import crash_bucket
    from ktriage.render.json_in import crash_from_dict

    report = json.loads(body)
    cd = report["crashes"][0]
    crash = crash_from_dict(cd)
    sig = crash_bucket(crash)
    matches = match_crash(crash, rules=rules)
    cd["known_bugs"] = [m.to_dict() for m in matches if getattr(m, "kind", "") != "note"]
    return sig, cd, report


def rebucket(s: Session, *, who: str = "rebucket", kb_dirs: tuple[str, ...] = (), batch: int = 500) -> RebucketSummary:
    """Recompute every crash's signature and known bug from its stored report (after the grouping rules or
    the knowledge base changed). A new signature joins the bucket the crash is in - both keys now lead
    there; a signature that already leads to another bucket means the new rules see one bug where the old
    saw two, and the two buckets are merged (recorded, undoable). Counts, history and hand merges stay:
    crash rows are never deleted, hand-split crashes are pinned, merged signatures stay merged."""
    from ktriage.fleet.facts import kb_facts
    from ktriage.kb.rules import cached_rules

    rules = cached_rules(kb_dirs)
    out = RebucketSummary(notes=[f"known-bug rule not loaded: {e}" for e in rules.errors])
    out.without_report = int(s.scalar(select(func.count()).where(CrashRow.report_kept.is_(False))) or 0)
    last = 0
    touched: set[str] = set()
    while True:
        rows = s.execute(
            select(CrashRow, CrashReportRow.body)
            .join(CrashReportRow, CrashReportRow.crash_id == CrashRow.id)
            .where(CrashRow.id > last)
            .order_by(CrashRow.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        for c, body in rows:
            last = c.id
            sig, cd, report = _reread(body, rules)
            out.crashes += 1
            f = kb_facts(cd)
            c.known_bug, c.fixed, c.fixed_in, c.workaround = f.known_bug, f.fixed, f.fixed_in, f.workaround
            s.execute(
                update(CrashReportRow)
                .where(CrashReportRow.crash_id == c.id)
                .values(body=json.dumps(report, ensure_ascii=False))
            )
            here = resolve(s, c.bucket_id)
            assert here is not None
            touched.add(here.id)
            there_id = s.scalar(select(Signature.bucket_id).where(Signature.hash == sig))
            if there_id is None:
                s.add(Signature(hash=sig, bucket_id=here.id, added_at=utcnow(), origin="rebucket"))
                s.flush()
                out.signatures_added += 1
                continue
            there = resolve(s, there_id)
            if there is None or there.id == here.id or c.pinned:
                continue
            keep, gone = (there, here) if (there.first_seen, there.id) <= (here.first_seen, here.id) else (here, there)
            merge(s, keep.id, gone.id, who=who, why=f"the grouping rules now give one signature ({sig}) to both")
            out.merged.append((gone.id, keep.id))
            touched.add(keep.id)
        s.flush()
    for bid in sorted(touched):
        b = resolve(s, bid)
        if b is None or b.id != bid:
            continue
        ch = derive_state(s, b, who, "knowledge base re-read")
        if ch:
            out.state_changes.append((b.id, ch[0], ch[1]))
    s.add(
        Action(
            kind="rebucket",
            bucket_id="*",
            who=who,
            why=f"{out.crashes} stored reports re-read",
            at=utcnow(),
            data=json.dumps({"merged": out.merged, "signatures_added": out.signatures_added}),
        )
    )
    return out
