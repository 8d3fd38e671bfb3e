"""Fleet store tests run on SQLite and on a real PostgreSQL (tests/fleetdb.py starts it); real inputs come
from fleet_inputs.py, analyzed once per session and stored into each database as the same JSON."""

from __future__ import annotations

import pytest

from fleetdb import db_url, postgres_server  # noqa: F401 - fixtures


@pytest.fixture
def store(db_url: str):  # noqa: F811, ANN201
    from ktriage.fleet import FleetStore

    st = FleetStore.open(db_url)
    yield st
    st.close()
