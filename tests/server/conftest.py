"""Server tests run the real FastAPI application over the real store, on SQLite and on PostgreSQL
(the `db_url` fixture shared with tests/fleet)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the fleet extra is not installed (pip install 'ktriage[fleet]')")

from fastapi.testclient import TestClient  # noqa: E402
from server_inputs import MAX_BODY  # noqa: E402

from fleetdb import db_url, postgres_server  # noqa: E402, F401 - fixtures shared with tests/fleet
from ktriage.server.app import create_app  # noqa: E402


@pytest.fixture
def app(db_url: str):  # noqa: F811 - the shared fixture
    return create_app(db_url, max_body=MAX_BODY)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # noqa: ANN001
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def token(app) -> str:  # noqa: ANN001
    return str(app.state.store.create_token("test-machine"))


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
