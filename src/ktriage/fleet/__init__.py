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

from ktriage.fleet import types as _types
from ktriage.fleet.types import *  # noqa: F403 - the records (plain dataclasses, no extra needed): types.__all__

if TYPE_CHECKING:  # these need the extra: imported on first use, through __getattr__ and _LAZY below
    from ktriage.fleet.bucketing import FleetError as FleetError
    from ktriage.fleet.store import FleetStore as FleetStore

_LAZY = {"FleetError": "ktriage.fleet.bucketing", "FleetStore": "ktriage.fleet.store"}
__all__ = [*_types.__all__, *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ktriage.fleet' has no attribute {name!r}")
