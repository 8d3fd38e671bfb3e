"""crash (bucket_id, seen) index: the growth columns and per-day counts of the bucket list read by it

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_crash_bucket_seen", "crash", ["bucket_id", "seen"])


def downgrade() -> None:
    op.drop_index("ix_crash_bucket_seen", table_name="crash")
