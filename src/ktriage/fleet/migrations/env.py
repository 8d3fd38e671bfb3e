"""Alembic environment: runs on the connection `ktriage.fleet.db.migrate` hands over (never a URL from an ini)."""

from __future__ import annotations

from alembic import context

from ktriage.fleet.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
