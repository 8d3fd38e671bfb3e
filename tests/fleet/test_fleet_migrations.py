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


def test_upgrade_keeps_rows(db_url: str) -> None:
    """A store created at revision 0002 with a crash in it upgrades to the newest revision with the crash."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    engine = make_engine(db_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(ktriage.fleet.migrations.__file__).parent))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO bucket (id, title, kind, state, generation, count, first_seen, last_seen, notified) "
                    "VALUES ('kt1-00000000000000aa', 't', 'warning', 'new', 1, 1, :t, :t, 0)"
                ),
                {"t": "2026-12-01 10:00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO crash (identity, bucket_id, signature, title, kind, seen, ingested_at, origin, "
                    "generation, pinned, report_kept) VALUES ('abc', 'kt1-00000000000000aa', 'kt1-00000000000000aa', "
                    "'t', 'warning', :t, :t, 'cli', 1, false, false)"
                ),
                {"t": "2026-12-01 10:00:00"},
            )
        migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT identity, content_key, log_time FROM crash")).all() == [
                ("abc", "abc", None)
            ]
    finally:
        engine.dispose()
