"""crash.content_key and crash.log_time: one crash from a log, a vmcore or a JSON report is stored once,
two boots printing the same oops (told apart by their log timestamps) twice

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crash") as b:
        b.add_column(sa.Column("content_key", sa.String(64), nullable=True))
        b.add_column(sa.Column("log_time", sa.String(40), nullable=True))
    op.execute("UPDATE crash SET content_key = identity")  # rows of 0001/0002 had no timestamp in theirs
    with op.batch_alter_table("crash") as b:
        b.alter_column("content_key", existing_type=sa.String(64), nullable=False)
        b.create_index("ix_crash_content_key", ["content_key"])


def downgrade() -> None:
    with op.batch_alter_table("crash") as b:
        b.drop_index("ix_crash_content_key")
        b.drop_column("log_time")
        b.drop_column("content_key")
