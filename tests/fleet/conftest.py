"""Fleet store tests run on SQLite and on a real PostgreSQL (tests/fleetdb.py starts it).

Real inputs are analyzed once per session (`analyzed`) and stored into each database as the
`ktriage.report/1` JSON `ktriage analyze --format json` writes, so both databases see the same reports.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from fleetdb import db_url, postgres_server  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "fixtures" / "lab"
LAB_ARM64 = REPO / "tests" / "fixtures" / "lab-arm64"

__all__ = ["LAB", "LAB_ARM64", "analyzed", "db_url", "postgres_server", "store"]


@functools.cache
def _analyzed(paths: tuple[str, ...]) -> str:
    from ktriage.pipeline import Options, analyze_paths
    from ktriage.render.json_out import render

    return render(analyze_paths(list(paths), Options()))


def analyzed(*paths: str | Path) -> dict[str, Any]:
    """The report `ktriage analyze --format json PATHS` prints (a fresh copy each call)."""
    return json.loads(_analyzed(tuple(str(p) for p in paths)))


@pytest.fixture
def store(db_url: str):  # noqa: F811, ANN201
    from ktriage.fleet import FleetStore

    st = FleetStore.open(db_url)
    yield st
    st.close()
