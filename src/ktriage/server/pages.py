"""The dashboard: the buckets table, a bucket, a crash. Server-rendered Jinja2 (autoescape on), same store
calls as the API, plain `def` routes so the store runs in the threadpool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from ktriage.fleet import FleetStore
from ktriage.model import KINDS
from ktriage.render.html import scoped_css
from ktriage.server.deps import BucketQuery, bucket_query, get_store
from ktriage.server.views import day_chart, kernel_period_table, report_html, single_crash_report

__all__ = ["router", "templates"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
templates.env.autoescape = True  # every page, whatever its file name: kernel strings are untrusted

Store = Annotated[FleetStore, Depends(get_store)]
STATES = ("new", "known", "fixed", "regressed")


def _url_with(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None drops one); for sort links and paging."""
    params = {k: v for k, v in request.query_params.items() if v != ""}
    for k, v in changes.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = str(v)
    return str(request.url.path) + ("?" + urlencode(params) if params else "")


_REPORT_CSS = scoped_css()


@router.get("/report.css")
def report_css() -> Response:
    """The stylesheet of `ktriage analyze --format html`, scoped to the embedded crash report: one set of rules
    for both, served by ktriage like every other file of the dashboard."""
    return Response(_REPORT_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


def _not_found(request: Request, what: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "notfound.html", {"what": what}, status_code=404)


@router.get("/", response_class=HTMLResponse)
def buckets_page(request: Request, store: Store, bq: Annotated[BucketQuery, Depends(bucket_query)]) -> HTMLResponse:
    items, total = store.list_buckets(bq.flt, sort=bq.sort, desc=bq.desc, limit=bq.limit, offset=bq.offset)

    def sort_url(col: str) -> str:
        desc = not (bq.sort == col and bq.desc)
        return _url_with(request, sort=col, order="desc" if desc else "asc", offset=None)

    ctx = {
        "buckets": items,
        "total": total,
        "bq": bq,
        "f": request.query_params,
        "kinds": sorted(KINDS),
        "states": STATES,
        "sort_url": sort_url,
        "view_url": lambda v: _url_with(request, view=None if v == "all" else v, offset=None),
        "prev_url": _url_with(request, offset=max(0, bq.offset - bq.limit)) if bq.offset else None,
        "next_url": _url_with(request, offset=bq.offset + bq.limit) if bq.offset + bq.limit < total else None,
    }
    return templates.TemplateResponse(request, "buckets/list.html", ctx)


def _known_match(crash: dict[str, Any] | None) -> dict[str, Any] | None:
    """The representative's best known-bug match (kind "match"), for its fix, references and workarounds."""
    for m in (crash or {}).get("known_bugs") or []:
        if isinstance(m, dict) and m.get("kind") == "match":
            return m
    return None


@router.get("/buckets/{bucket_id}", response_class=HTMLResponse)
def bucket_page(request: Request, store: Store, bucket_id: str) -> HTMLResponse:
    d = store.get_bucket(bucket_id)
    if d is None:
        return _not_found(request, f"bucket {bucket_id}")
    crashes, ncrashes = store.bucket_crashes(bucket_id, limit=20)
    rep = d.representative
    ctx = {
        "d": d,
        "b": d.summary,
        "charts": {unit: day_chart(d.per_day, unit=unit) for unit in ("day", "week", "month")},
        "periods": kernel_period_table(d),
        "known": _known_match(rep),
        "rep_html": report_html(single_crash_report(rep)) if rep else None,
        "crashes": crashes,
        "ncrashes": ncrashes,
        "kind_text": KINDS.get(d.summary.kind, ""),
    }
    return templates.TemplateResponse(request, "buckets/item.html", ctx)


@router.get("/crashes/{crash_id}", response_class=HTMLResponse)
def crash_page(request: Request, store: Store, crash_id: int) -> HTMLResponse:
    d = store.get_crash(crash_id)
    if d is None:
        return _not_found(request, f"crash {crash_id}")
    ctx = {"c": d.summary, "report_html": report_html(d.report) if d.report else None}
    return templates.TemplateResponse(request, "crashes/item.html", ctx)
