"""`/api/v1`: submissions from machines, and the buckets and crashes they made, as JSON.

Reads are plain `def` routes, so FastAPI runs the store's synchronous SQLAlchemy calls in its threadpool;
the submission route is async only to stream the body under the size limit, and hands the store call to the
same threadpool. A 202 is returned after `ingest_bytes` returned, i.e. after the store committed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from ktriage.fleet import BucketDetail, BucketSummary, CrashSummary, FleetStore
from ktriage.inputs import InputError
from ktriage.server.body import BadBody, TooLarge, read_submission
from ktriage.server.deps import (
    BucketQuery,
    Settings,
    bucket_query,
    get_settings,
    get_store,
    parse_time,
    require_token,
)
from ktriage.server.schemas import (
    BucketDetailOut,
    BucketOut,
    BucketPage,
    CrashDetailOut,
    CrashOut,
    CrashPage,
    DayOut,
    HostOut,
    IngestOut,
    IngestReply,
    KernelOut,
    PeriodOut,
)

__all__ = ["bucket_out", "router"]

router = APIRouter(prefix="/api/v1", tags=["fleet"])

Store = Annotated[FleetStore, Depends(get_store)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body cannot be read as a kernel log or a ktriage.report/1 JSON (one-line reason)"},
    401: {"description": "no valid write token"},
    413: {"description": "body above the server's size limit"},
}


@router.post("/reports", status_code=202, response_model=IngestReply, responses=_ERRORS)
async def post_report(
    request: Request,
    store: Store,
    settings: Annotated[Settings, Depends(get_settings)],
    token: Annotated[str, Depends(require_token)],
    host: Annotated[str | None, Query(max_length=255, description="the machine that crashed")] = None,
    seen: Annotated[
        str | None, Query(description="when the crash happened (ISO time; default: now), e.g. from the kdump directory")
    ] = None,
) -> IngestReply:
    """Store a crash report: a raw console log, dmesg, journal export or `crash` output (as the body, or as the
    file of a multipart form with an optional `host` field), or a `ktriage.report/1` JSON. The 202 carries, per
    crash, its bucket and what is known about it; it is sent only once the store has committed."""
    try:
        sub = await read_submission(request, settings.max_body)
    except TooLarge as e:
        raise HTTPException(413, str(e)) from None
    except BadBody as e:
        raise HTTPException(400, str(e)) from None
    when = parse_time(seen, "seen") if seen else None
    if not sub.data.strip():
        raise HTTPException(400, "empty body: send a kernel log or a ktriage.report/1 JSON")
    try:
        results = await run_in_threadpool(
            store.ingest_bytes,
            sub.data,
            sub.name,
            host=host or sub.host,
            origin=f"api:{token}",
            scrub=settings.scrub,
            seen=when,
        )
    except InputError as e:
        raise HTTPException(400, _one_line(str(e))) from None
    if not results:
        raise HTTPException(400, "no kernel crash found in the submission (nothing stored)")
    out = [IngestOut(**asdict(r)) for r in results]
    return IngestReply(crashes=out, stored=sum(1 for r in out if not r.duplicate))


def _one_line(msg: str) -> str:
    return " ".join(msg.split())[:500] or "the input cannot be read"


def bucket_out(b: BucketSummary) -> BucketOut:
    return BucketOut(**asdict(b), state_label=b.state_label, state_reason=b.state_reason)


@router.get("/buckets", response_model=BucketPage)
def list_buckets(store: Store, bq: Annotated[BucketQuery, Depends(bucket_query)]) -> BucketPage:
    """Buckets matching every given filter, ordered by `sort`, one page at a time."""
    items, total = store.list_buckets(bq.flt, sort=bq.sort, desc=bq.desc, limit=bq.limit, offset=bq.offset)
    return BucketPage(total=total, limit=bq.limit, offset=bq.offset, items=[bucket_out(b) for b in items])


def _bucket_or_404(store: FleetStore, bucket_id: str) -> BucketDetail:
    d = store.get_bucket(bucket_id)
    if d is None:
        raise HTTPException(404, f"no bucket {bucket_id}")
    return d


@router.get("/buckets/{bucket_id}", response_model=BucketDetailOut, responses={404: {"description": "no such bucket"}})
def get_bucket(store: Store, bucket_id: str) -> BucketDetailOut:
    """One bucket: per-kernel and per-day counts, hosts, signatures, history and its representative crash."""
    d = _bucket_or_404(store, bucket_id)
    return BucketDetailOut(
        **asdict(d.summary),
        state_label=d.summary.state_label,
        state_reason=d.summary.state_reason,
        per_kernel=[KernelOut(**asdict(k)) for k in d.per_kernel],
        per_day=[DayOut(day=day, count=n) for day, n in d.per_day],
        per_kernel_day=[PeriodOut(**asdict(p)) for p in d.kernel_periods("day")],
        per_kernel_week=[PeriodOut(**asdict(p)) for p in d.kernel_periods("week")],
        per_kernel_month=[PeriodOut(**asdict(p)) for p in d.kernel_periods("month")],
        host_counts=[HostOut(host=h, count=n) for h, n in d.hosts],
        signatures=d.signatures,
        aliases=d.aliases,
        workaround=d.workaround,
        history=d.history,
        generation=d.generation,
        representative=d.representative,
    )


@router.get(
    "/buckets/{bucket_id}/crashes", response_model=CrashPage, responses={404: {"description": "no such bucket"}}
)
def bucket_crashes(
    store: Store,
    bucket_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CrashPage:
    """The bucket's crashes, most recent first (counts are kept forever; full reports only for a bounded few)."""
    _bucket_or_404(store, bucket_id)
    items, total = store.bucket_crashes(bucket_id, limit=limit, offset=offset)
    return CrashPage(total=total, limit=limit, offset=offset, items=[crash_out(c) for c in items])


def crash_out(c: CrashSummary) -> CrashOut:
    return CrashOut(**asdict(c))


@router.get("/crashes/{crash_id}", response_model=CrashDetailOut, responses={404: {"description": "no such crash"}})
def get_crash(store: Store, crash_id: int) -> CrashDetailOut:
    """One crash with its full stored `ktriage.report/1` record (null when the bucket no longer keeps it)."""
    d = store.get_crash(crash_id)
    if d is None:
        raise HTTPException(404, f"no crash {crash_id}")
    return CrashDetailOut(**asdict(d.summary), report=d.report)
