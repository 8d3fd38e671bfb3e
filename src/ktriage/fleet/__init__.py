"""The fleet store: every crash of every machine, grouped into buckets with their history.

    from ktriage.fleet import FleetStore, BucketFilter
    store = FleetStore.open("sqlite:///fleet.db")       # or postgresql://..., migrated on open
    store.ingest_paths(["/var/crash"], host="db01")
    buckets, total = store.list_buckets(BucketFilter(kind="null-deref"))

Needs the `fleet` extra (SQLAlchemy, Alembic, psycopg): `pip install 'ktriage[fleet]'`.
"""

from ktriage.fleet.bucketing import FleetError
from ktriage.fleet.store import FleetStore
from ktriage.fleet.types import (
    STATES,
    BucketDetail,
    BucketFilter,
    BucketSummary,
    CrashDetail,
    CrashSummary,
    IngestResult,
    IngestSummary,
    KernelRow,
    RebucketSummary,
)

__all__ = [
    "STATES",
    "BucketDetail",
    "BucketFilter",
    "BucketSummary",
    "CrashDetail",
    "CrashSummary",
    "FleetError",
    "FleetStore",
    "IngestResult",
    "IngestSummary",
    "KernelRow",
    "RebucketSummary",
]
