"""The Alembic revisions are the schema's source: one head, and the models agree with what they build."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("alembic")

from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

import ktriage.fleet.migrations  # noqa: E402
from ktriage.fleet.db import make_engine, migrate  # noqa: E402
from ktriage.fleet.models import Base  # noqa: E402


def test_one_head() -> None:
    script = ScriptDirectory(str(Path(ktriage.fleet.migrations.__file__).parent))
    assert len(script.get_heads()) == 1


def test_models_match_migrations(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        migrate(engine)  # opening an up-to-date store again changes nothing
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()
