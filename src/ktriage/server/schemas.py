"""The `/api/v1` JSON shapes (pydantic), built from the store's records.

They are a contract like `ktriage.report/1`: fields are added, never renamed. The store's dataclasses are
converted here, once, so the routes stay one call each.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "BucketDetailOut",
    "BucketOut",
    "BucketPage",
    "CrashDetailOut",
    "CrashOut",
    "CrashPage",
    "DayOut",
    "HostOut",
    "IngestOut",
    "IngestReply",
    "KernelOut",
]


class IngestOut(BaseModel):
    """What the server knows about one submitted crash, right after storing it."""

    crash_id: int
    bucket_id: str
    bucket_new: bool = Field(description="this crash opened a new bucket")
    duplicate: bool = Field(description="the same crash was already stored (not counted again)")
    title: str
    kind: str
    known_bug: str | None = Field(description="id of the known upstream bug this bucket is, if any")
    fixed: bool | None = Field(description="does this crash's kernel carry the fix (null: unknown)")
    fixed_in: str | None
    workaround: str | None
    state: str = Field(description="bucket state after this crash: new, known, fixed or regressed")


class IngestReply(BaseModel):
    crashes: list[IngestOut]
    stored: int = Field(description="crashes newly stored by this submission")


class BucketOut(BaseModel):
    id: str
    title: str
    kind: str
    count: int
    hosts: int
    kernels: list[str]
    distros: list[str]
    first_seen: datetime
    last_seen: datetime
    state: str
    known_bug: str | None
    fixed_in: str | None
    growth: int = Field(description="crashes in the last 7 days minus the 7 days before")
    state_label: str = Field("", description="what the state means, for display (fixed: 'fix available — ...')")
    state_reason: str = Field("", description="one line: why the bucket is in this state")


class BucketPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[BucketOut]


class KernelOut(BaseModel):
    release: str
    count: int
    first_seen: datetime
    last_seen: datetime
    has_fix: bool | None
    probably_fixed_since: str | None


class DayOut(BaseModel):
    day: date
    count: int


class PeriodOut(BaseModel):
    release: str
    start: date = Field(description="the day, the Monday of the week, or the 1st of the month")
    count: int


class HostOut(BaseModel):
    host: str
    count: int


class BucketDetailOut(BucketOut):
    per_kernel: list[KernelOut]
    per_day: list[DayOut]
    per_kernel_day: list[PeriodOut] = Field(description="crashes per kernel release and day")
    per_kernel_week: list[PeriodOut] = Field(description="crashes per kernel release and week (from Monday)")
    per_kernel_month: list[PeriodOut] = Field(description="crashes per kernel release and month")
    host_counts: list[HostOut]
    signatures: list[str]
    aliases: list[str]
    workaround: str | None
    history: list[dict[str, Any]]
    generation: int = Field(1, description="2 after a first regression, ...")
    representative: dict[str, Any] | None


class CrashOut(BaseModel):
    id: int
    bucket_id: str
    title: str
    kind: str
    host: str | None
    kernel: str | None
    seen: datetime
    report_kept: bool


class CrashPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[CrashOut]


class CrashDetailOut(CrashOut):
    report: dict[str, Any] | None = Field(description="the full ktriage.report/1 record, null when no longer kept")
