"""The fleet store: every crash of every machine, grouped into buckets with their history.

    from ktriage.fleet import FleetStore, BucketFilter
    store = FleetStore.open("sqlite:///fleet.db")       # or postgresql://..., migrated on open
    store.ingest_paths(["/var/crash"], host="db01")
    buckets, total = store.list_buckets(BucketFilter(kind="null-deref"))

Needs the `fleet` extra (SQLAlchemy, Alembic, psycopg): `pip install 'ktriage[fleet]'`. The names are
imported on first use, so that `ktriage fleet --help` (ktriage.fleet.cli) works without the extra and
says what to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "FleetError": "ktriage.fleet.bucketing",
    "FleetStore": "ktriage.fleet.store",
    **{
        n: "ktriage.fleet.types"
        for n in (
            "STATES",
            "BucketDetail",
            "BucketFilter",
            "BucketSummary",
            "CrashDetail",
            "CrashSummary",
            "IngestResult",
            "IngestSummary",
            "KernelRow",
            "RebucketSummary",
        )
    },
}

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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'ktriage.fleet' has no attribute {name!r}")
