"""What every route needs: the store, the caller's token, and the bucket filters shared by API and pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ktriage.fleet import STATES, BucketFilter, FleetStore

__all__ = [
    "BucketQuery",
    "Settings",
    "bucket_query",
    "get_settings",
    "get_store",
    "parse_since",
    "parse_time",
    "require_token",
]

SORTS = ("count", "last_seen", "first_seen", "growth", "title")
Sort = Literal["count", "last_seen", "first_seen", "growth", "title"]
View = Literal["all", "new", "growing"]
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Settings:
    scrub: bool
    max_body: int


def get_store(request: Request) -> FleetStore:
    store: FleetStore = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


_bearer = HTTPBearer(auto_error=False, description="a write token from `ktriage fleet token create NAME`")


def require_token(
    store: Annotated[FleetStore, Depends(get_store)],
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The token's name; 401 when the header is missing, not Bearer, or the secret is unknown or revoked."""
    name = store.check_token(cred.credentials) if cred is not None and cred.scheme.lower() == "bearer" else None
    if name is None:
        raise HTTPException(
            401, "a valid write token is needed (Authorization: Bearer <token>)", headers={"WWW-Authenticate": "Bearer"}
        )
    return name


_RELATIVE = re.compile(r"^(\d{1,5})([dhw])$")


def parse_since(text: str | None) -> datetime | None:
    """`2026-11-30`, `2026-11-30T12:00:00[+00:00]`, or relative `7d` / `12h` / `2w`; naive times are UTC."""
    if not text:
        return None
    m = _RELATIVE.match(text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {"d": timedelta(days=n), "h": timedelta(hours=n), "w": timedelta(weeks=n)}[unit]
        return datetime.now(timezone.utc) - delta
    return parse_time(text, "since", "YYYY-MM-DD, ISO time, or 7d/12h/2w")


def parse_time(text: str, what: str, forms: str = "YYYY-MM-DD or ISO time") -> datetime:
    """An ISO date or time (naive = UTC), or a 400 naming the parameter."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(400, f"{what}: {text!r} is not a date ({forms})") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class BucketQuery:
    """One bucket-list request: filter, order and page, as both the API and the dashboard take them."""

    flt: BucketFilter
    sort: str
    desc: bool
    limit: int
    offset: int
    view: str


def bucket_query(
    kind: Annotated[str | None, Query(description="crash kind, e.g. null-deref, use-after-free")] = None,
    kernel: Annotated[str | None, Query(description="kernel release seen in the bucket")] = None,
    host: Annotated[str | None, Query(description="host name (scrubbed form when the store scrubs)")] = None,
    distro: Annotated[str | None, Query()] = None,
    known_bug: Annotated[str | None, Query(description="known bug id, e.g. nf-conntrack-clash-refetch")] = None,
    state: Annotated[str | None, Query(description="new, known, fixed or regressed")] = None,
    q: Annotated[str | None, Query(description="text in the title or signatures")] = None,
    since: Annotated[str | None, Query(description="seen since: YYYY-MM-DD, ISO time, or 7d/12h/2w")] = None,
    view: Annotated[View, Query(description="new: first seen this week; growing: more crashes than last week")] = "all",
    sort: Annotated[Sort, Query()] = "last_seen",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> BucketQuery:
    if state and state not in STATES:
        raise HTTPException(422, f"state: {state!r} is not one of {', '.join(STATES)}")
    flt = BucketFilter(
        kind=kind or None,
        kernel=kernel or None,
        host=host or None,
        distro=distro or None,
        known_bug=known_bug or None,
        state=state or None,
        q=q or None,
        since=parse_since(since),
        new_since=datetime.now(timezone.utc) - WEEK if view == "new" else None,
        growing=view == "growing",
    )
    return BucketQuery(flt, sort, order == "desc", limit, offset, view)
