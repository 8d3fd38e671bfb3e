"""Every read of the fleet store: bucket lists with filters, a bucket's detail, crashes, history.

Returns the records of `ktriage.fleet.types`; times come back as aware UTC datetimes.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from ktriage.fleet.models import Action, Bucket, BucketAlias, CrashReportRow, CrashRow, Signature
from ktriage.fleet.types import (
    BucketDetail,
    BucketFilter,
    BucketSummary,
    CrashDetail,
    CrashSummary,
    KernelRow,
    PeriodCount,
)

__all__ = ["bucket_crashes", "get_bucket", "get_crash", "list_buckets", "probably_fixed_since"]

SORTS = ("count", "last_seen", "first_seen", "growth", "title")
WEEK = timedelta(days=7)


def aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def naive(dt: datetime) -> datetime:
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo is not None else dt


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _window_count(start: datetime, end: datetime | None) -> Any:
    cond = [CrashRow.bucket_id == Bucket.id, CrashRow.seen >= start]
    if end is not None:
        cond.append(CrashRow.seen < end)
    return select(func.count()).select_from(CrashRow).where(*cond).correlate(Bucket).scalar_subquery()


def _growth_expr(now: datetime) -> Any:
    return _window_count(now - WEEK, None) - _window_count(now - 2 * WEEK, now - WEEK)


def _crash_exists(*cond: ColumnElement[bool]) -> ColumnElement[bool]:
    """Buckets with a crash that matches: one index lookup (crash.kernel, .host...), not a scan per bucket."""
    return Bucket.id.in_(select(CrashRow.bucket_id).where(*cond))


def _conditions(flt: BucketFilter, growth: Any) -> list[ColumnElement[bool]]:
    c: list[ColumnElement[bool]] = [Bucket.merged_into.is_(None)]
    if flt.kind:
        c.append(Bucket.kind == flt.kind)
    if flt.state:
        c.append(Bucket.state == flt.state)
    if flt.known_bug:
        c.append(Bucket.known_bug == flt.known_bug)
    if flt.since:
        c.append(Bucket.last_seen >= naive(flt.since))
    if flt.new_since:
        c.append(Bucket.first_seen >= naive(flt.new_since))
    if flt.kernel:
        c.append(_crash_exists(CrashRow.kernel == flt.kernel))
    if flt.host:
        c.append(_crash_exists(CrashRow.host == flt.host))
    if flt.distro:
        c.append(_crash_exists(CrashRow.distro == flt.distro))
    if flt.q:
        like = f"%{flt.q.lower()}%"
        alias = exists(
            select(BucketAlias.title).where(
                BucketAlias.bucket_id == Bucket.id, func.lower(BucketAlias.title).like(like)
            )
        )
        c.append(
            or_(func.lower(Bucket.title).like(like), Bucket.id == flt.q, func.lower(Bucket.known_bug).like(like), alias)
        )
    if flt.growing:
        c.append(growth > 0)
    return c


def _summaries(s: Session, rows: Sequence[tuple[Bucket, int]]) -> list[BucketSummary]:
    ids = [b.id for b, _ in rows]
    kernels: dict[str, list[str]] = defaultdict(list)
    distros: dict[str, list[str]] = defaultdict(list)
    hosts: dict[str, int] = {}
    if ids:
        for bid, k in s.execute(
            select(CrashRow.bucket_id, CrashRow.kernel)
            .where(CrashRow.bucket_id.in_(ids), CrashRow.kernel.is_not(None))
            .group_by(CrashRow.bucket_id, CrashRow.kernel)
            .order_by(CrashRow.kernel)
        ):
            kernels[bid].append(str(k))
        for bid, d in s.execute(
            select(CrashRow.bucket_id, CrashRow.distro)
            .where(CrashRow.bucket_id.in_(ids), CrashRow.distro.is_not(None))
            .group_by(CrashRow.bucket_id, CrashRow.distro)
            .order_by(CrashRow.distro)
        ):
            distros[bid].append(str(d))
        for bid, n in s.execute(
            select(CrashRow.bucket_id, func.count(func.distinct(CrashRow.host)))
            .where(CrashRow.bucket_id.in_(ids))
            .group_by(CrashRow.bucket_id)
        ):
            hosts[bid] = int(n)
    return [
        BucketSummary(
            id=b.id,
            title=b.title,
            kind=b.kind,
            count=b.count,
            hosts=hosts.get(b.id, 0),
            kernels=kernels.get(b.id, []),
            first_seen=aware(b.first_seen),
            last_seen=aware(b.last_seen),
            state=b.state,
            known_bug=b.known_bug,
            fixed_in=b.fixed_in,
            growth=int(g or 0),
            distros=distros.get(b.id, []),
        )
        for b, g in rows
    ]


def list_buckets(
    s: Session, flt: BucketFilter, *, sort: str = "last_seen", desc: bool = True, limit: int = 50, offset: int = 0
) -> tuple[list[BucketSummary], int]:
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    growth = _growth_expr(_now())
    cond = _conditions(flt, growth)
    total = int(s.scalar(select(func.count()).select_from(Bucket).where(*cond)) or 0)
    key: Any = {
        "count": Bucket.count,
        "last_seen": Bucket.last_seen,
        "first_seen": Bucket.first_seen,
        "growth": growth,
        "title": Bucket.title,
    }[sort]
    order = [key.desc() if desc else key.asc(), Bucket.id]
    rows = s.execute(select(Bucket, growth).where(*cond).order_by(*order).limit(limit).offset(offset)).all()
    return _summaries(s, [(r[0], r[1]) for r in rows]), total


def resolve(s: Session, bucket_id: str) -> Bucket | None:
    """A bucket by id or by any of its signatures; a merged bucket resolves to the one it went into."""
    b = s.get(Bucket, bucket_id)
    if b is None:
        bid = s.scalar(select(Signature.bucket_id).where(Signature.hash == bucket_id))
        b = s.get(Bucket, bid) if bid else None
    for _ in range(32):
        if b is None or not b.merged_into:
            return b
        b = s.get(Bucket, b.merged_into)
    return b


# ------------------------------------------------------------------ kernels: "probably fixed since"


def _branch(release: str) -> tuple[tuple[Any, ...], Callable[[str, str], int]] | None:
    """The release's branch (newer builds of it replace it on a machine) and how to order its builds."""
    from ktriage.kb.versions import debvercmp, kvercmp, rpmvercmp, running_kernel

    rk = running_kernel(release)
    if rk is None or rk.upstream is None:
        return None
    if rk.family == "upstream":
        return ("upstream", rk.upstream.branch), kvercmp
    if rk.family == "el":
        return (rk.distro, rk.upstream.branch), rpmvercmp
    if rk.family in ("debian", "ubuntu"):
        return (rk.family, rk.upstream.branch), debvercmp
    return None


def probably_fixed_since(bucket_releases: Sequence[str], fleet_releases: Sequence[str]) -> dict[str, str]:
    """FAF's "probably fixed since": per branch, the oldest release the fleet runs (it crashed with
    something) that is newer than every release this bucket crashed on. Maps each of the bucket's
    releases on such a branch to that release."""
    by_branch: dict[tuple[Any, ...], tuple[list[str], Callable[[str, str], int]]] = {}
    for r in bucket_releases:
        br = _branch(r)
        if br:
            by_branch.setdefault(br[0], ([], br[1]))[0].append(r)
    out: dict[str, str] = {}
    for key, (mine, cmp) in by_branch.items():
        newest = sorted(mine, key=functools.cmp_to_key(cmp))[-1]
        newer = [
            r for r in fleet_releases if r not in mine and (b := _branch(r)) and b[0] == key and cmp(r, newest) > 0
        ]
        if newer:
            first = sorted(newer, key=functools.cmp_to_key(cmp))[0]
            for r in mine:
                out[r] = first
    return out


def _per_kernel(s: Session, b: Bucket) -> list[KernelRow]:
    rows = s.execute(
        select(CrashRow.kernel, func.count(), func.min(CrashRow.seen), func.max(CrashRow.seen))
        .where(CrashRow.bucket_id == b.id, CrashRow.kernel.is_not(None))
        .group_by(CrashRow.kernel)
    ).all()
    fixes: dict[str, bool | None] = {}
    for k, fixed in s.execute(
        select(CrashRow.kernel, CrashRow.fixed)
        .where(CrashRow.bucket_id == b.id, CrashRow.fixed.is_not(None))
        .distinct()
    ):
        fixes[str(k)] = bool(fixed) or bool(fixes.get(str(k)))
    fleet = [str(r) for r in s.scalars(select(CrashRow.kernel).where(CrashRow.kernel.is_not(None)).distinct())]
    since = probably_fixed_since([str(r[0]) for r in rows], fleet)
    out = [
        KernelRow(
            release=str(k),
            count=int(n),
            first_seen=aware(a),
            last_seen=aware(z),
            has_fix=fixes.get(str(k)),
            probably_fixed_since=since.get(str(k)),
        )
        for k, n, a, z in rows
    ]
    return sorted(out, key=lambda r: (-r.count, r.release))


def _history(s: Session, bucket_id: str) -> list[dict[str, Any]]:
    acts = s.scalars(
        select(Action).where(or_(Action.bucket_id == bucket_id, Action.other_id == bucket_id)).order_by(Action.id)
    ).all()
    return [
        {
            "id": a.id,
            "action": a.kind,
            "bucket": a.bucket_id,
            "other": a.other_id,
            "who": a.who,
            "why": a.why,
            "when": aware(a.at),
            "undone_by": a.undone_by,
            "data": json.loads(a.data or "{}"),
        }
        for a in acts
    ]


def _representative(s: Session, bucket_id: str) -> dict[str, Any] | None:
    body = s.scalar(
        select(CrashReportRow.body)
        .join(CrashRow, CrashRow.id == CrashReportRow.crash_id)
        .where(CrashRow.bucket_id == bucket_id)
        .order_by(CrashRow.id.desc())
        .limit(1)
    )
    if body is None:
        return None
    crashes = json.loads(body).get("crashes") or []
    return crashes[0] if crashes else None


def get_bucket(s: Session, bucket_id: str) -> BucketDetail | None:
    b = resolve(s, bucket_id)
    if b is None:
        return None
    growth = _growth_expr(_now())
    g = s.scalar(select(growth).select_from(Bucket).where(Bucket.id == b.id))
    summary = _summaries(s, [(b, int(g or 0))])[0]
    per_day_rows = s.execute(
        select(func.date(CrashRow.seen), func.count())
        .where(CrashRow.bucket_id == b.id)
        .group_by(func.date(CrashRow.seen))
        .order_by(func.date(CrashRow.seen))
    ).all()
    per_day = [(_day(d), int(n)) for d, n in per_day_rows]
    kernel_days = [
        PeriodCount(str(k), _day(d), int(n))
        for k, d, n in s.execute(
            select(CrashRow.kernel, func.date(CrashRow.seen), func.count())
            .where(CrashRow.bucket_id == b.id, CrashRow.kernel.is_not(None))
            .group_by(CrashRow.kernel, func.date(CrashRow.seen))
            .order_by(func.date(CrashRow.seen))
        )
    ]
    hosts = [
        (str(h), int(n))
        for h, n in s.execute(
            select(CrashRow.host, func.count())
            .where(CrashRow.bucket_id == b.id, CrashRow.host.is_not(None))
            .group_by(CrashRow.host)
            .order_by(func.count().desc(), CrashRow.host)
        )
    ]
    sigs = list(
        s.scalars(
            select(Signature.hash).where(Signature.bucket_id == b.id).order_by(Signature.added_at, Signature.hash)
        )
    )
    aliases = list(
        s.scalars(select(BucketAlias.title).where(BucketAlias.bucket_id == b.id).order_by(BucketAlias.title))
    )
    return BucketDetail(
        summary=summary,
        representative=_representative(s, b.id),
        per_kernel=_per_kernel(s, b),
        per_day=per_day,
        hosts=hosts,
        signatures=sigs,
        history=_history(s, b.id),
        workaround=b.workaround,
        aliases=aliases,
        generation=b.generation,
        kernel_days=kernel_days,
    )


def _day(d: Any) -> date:
    """SQL date() is a date on PostgreSQL and a 'YYYY-MM-DD' string on SQLite."""
    return d if isinstance(d, date) else date.fromisoformat(str(d))


def _crash_summary(c: CrashRow) -> CrashSummary:
    return CrashSummary(
        id=c.id,
        bucket_id=c.bucket_id,
        title=c.title,
        kind=c.kind,
        host=c.host,
        kernel=c.kernel,
        seen=aware(c.seen),
        report_kept=c.report_kept,
    )


def bucket_crashes(s: Session, bucket_id: str, *, limit: int = 50, offset: int = 0) -> tuple[list[CrashSummary], int]:
    b = resolve(s, bucket_id)
    if b is None:
        return [], 0
    total = int(s.scalar(select(func.count()).select_from(CrashRow).where(CrashRow.bucket_id == b.id)) or 0)
    rows = s.scalars(
        select(CrashRow)
        .where(CrashRow.bucket_id == b.id)
        .order_by(CrashRow.seen.desc(), CrashRow.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [_crash_summary(c) for c in rows], total


def get_crash(s: Session, crash_id: int) -> CrashDetail | None:
    c = s.get(CrashRow, crash_id)
    if c is None:
        return None
    body = s.scalar(select(CrashReportRow.body).where(CrashReportRow.crash_id == c.id))
    return CrashDetail(summary=_crash_summary(c), report=json.loads(body) if body else None)
