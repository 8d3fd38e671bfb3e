"""The records the fleet store hands out (the contract with the HTTP server and the CLI).

Plain dataclasses, not ORM rows: a caller never holds a database session, and the server turns these
into JSON and pages without knowing the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

__all__ = [
    "STATES",
    "BucketDetail",
    "BucketFilter",
    "BucketSummary",
    "CrashDetail",
    "CrashSummary",
    "IngestResult",
    "IngestSummary",
    "KernelRow",
    "PeriodCount",
    "RebucketSummary",
]

# new: no known bug matched; known: matched, no fix recorded; fixed: a fix is recorded and no crash of
# this generation ran a kernel carrying it; regressed: a crash on a kernel that carries the fix.
STATES = ("new", "known", "fixed", "regressed")

# What each stored state means to a person reading a page or `fleet buckets`: "fixed" does not say the fleet
# is fixed, only that a fix exists and no crash ran a kernel carrying it (so crashes on kernels lacking the
# fix are expected). The stored names stay the CLI/API contract; these are for display.
STATE_LABELS = {
    "new": "new — no known bug matches",
    "known": "known bug — no fix recorded",
    "fixed": "fix available — none seen on fixed kernels",
    "regressed": "regressed — crashed on a kernel with the fix",
}


def state_reason(state: str, known_bug: str | None, fixed_in: str | None) -> str:
    """One line saying why a bucket is in its state, with the known bug and release that make it so."""
    kb, fin = known_bug or "?", fixed_in or "an unrecorded release"
    return {
        "new": "no known bug in the knowledge base matches these crashes",
        "known": f"matched to known bug {kb}; the knowledge base records no fix for it",
        "fixed": f"a fix for {kb} is recorded (fixed in {fin}); no crash so far ran a kernel known to carry it",
        "regressed": f"crashed again on a kernel that carries the fix for {kb} (fixed in {fin})",
    }.get(state, f"state {state}")


@dataclass(frozen=True)
class BucketFilter:
    kind: str | None = None
    kernel: str | None = None
    host: str | None = None
    distro: str | None = None
    known_bug: str | None = None
    state: str | None = None
    q: str | None = None
    since: datetime | None = None  # last seen at or after
    new_since: datetime | None = None  # first seen at or after
    growing: bool = False  # more crashes in the last 7 days than in the 7 before


@dataclass
class IngestResult:
    """One crash of a submission: where it went and what the knowledge base says about it."""

    crash_id: int
    bucket_id: str
    bucket_new: bool
    duplicate: bool
    title: str
    kind: str
    known_bug: str | None
    fixed: bool | None  # does THIS crash's kernel carry the fix (None = unknown)
    fixed_in: str | None
    workaround: str | None
    state: str  # the bucket's state after this crash


@dataclass
class IngestSummary:
    """What `fleet ingest` did with its inputs: one entry per crash, one line per unreadable input."""

    results: list[IngestResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line each
    inputs: int = 0

    @property
    def new(self) -> list[IngestResult]:
        return [r for r in self.results if not r.duplicate]

    @property
    def duplicates(self) -> list[IngestResult]:
        return [r for r in self.results if r.duplicate]


@dataclass
class BucketSummary:
    id: str
    title: str
    kind: str
    count: int
    hosts: int
    kernels: list[str]
    first_seen: datetime
    last_seen: datetime
    state: str
    known_bug: str | None
    fixed_in: str | None
    growth: int  # crashes in the last 7 days minus the 7 before
    distros: list[str]

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)

    @property
    def state_reason(self) -> str:
        return state_reason(self.state, self.known_bug, self.fixed_in)


@dataclass
class KernelRow:
    release: str
    count: int
    first_seen: datetime
    last_seen: datetime
    has_fix: bool | None
    probably_fixed_since: str | None  # a newer release of the same branch runs in the fleet and does not crash so


@dataclass
class PeriodCount:
    """Crashes of one kernel release in one day, week (starting Monday) or month (starting on the 1st)."""

    release: str
    start: date
    count: int


def week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def month_start(d: date) -> date:
    return d.replace(day=1)


def roll_up(per_day: list[tuple[date, int]], unit: str) -> list[tuple[date, int]]:
    """Daily counts summed per week or month (FAF keeps daily, weekly and monthly history per release)."""
    start = {"day": lambda d: d, "week": week_start, "month": month_start}[unit]
    out: dict[date, int] = {}
    for d, n in per_day:
        out[start(d)] = out.get(start(d), 0) + n
    return sorted(out.items())


@dataclass
class BucketDetail:
    summary: BucketSummary
    representative: dict[str, Any] | None  # a stored ktriage.report/1 crash dict
    per_kernel: list[KernelRow]
    per_day: list[tuple[date, int]]
    hosts: list[tuple[str, int]]
    signatures: list[str]
    history: list[dict[str, Any]]  # merges, splits, state changes: who, why, when
    workaround: str | None
    aliases: list[str]  # other titles seen
    generation: int = 1  # 2 after a first regression, ...
    kernel_days: list[PeriodCount] = field(default_factory=list)  # per release and day, oldest first

    def kernel_periods(self, unit: str) -> list[PeriodCount]:
        """Per release, crashes per day, week or month (releases in per_kernel's order, periods oldest first)."""
        rank = {k.release: i for i, k in enumerate(self.per_kernel)}
        by: dict[str, list[tuple[date, int]]] = {}
        for p in self.kernel_days:
            by.setdefault(p.release, []).append((p.start, p.count))
        return [
            PeriodCount(rel, start, n)
            for rel in sorted(by, key=lambda r: (rank.get(r, len(rank)), r))
            for start, n in roll_up(by[rel], unit)
        ]


@dataclass
class CrashSummary:
    id: int
    bucket_id: str
    title: str
    kind: str
    host: str | None
    kernel: str | None
    seen: datetime
    report_kept: bool


@dataclass
class CrashDetail:
    summary: CrashSummary
    report: dict[str, Any] | None  # the full ktriage.report/1 dict (None when not kept; counts are kept forever)


@dataclass
class RebucketSummary:
    crashes: int = 0  # crashes whose stored report was re-read
    signatures_added: int = 0  # new-scheme signatures attached to existing buckets
    merged: list[tuple[str, str]] = field(default_factory=list)  # (from, into) buckets the new rules unified
    state_changes: list[tuple[str, str, str]] = field(default_factory=list)  # (bucket, old, new)
    without_report: int = 0  # crashes whose report was not kept: they stay where they are
    notes: list[str] = field(default_factory=list)  # knowledge-base rules that did not load
