"""the fleet store: buckets, signatures, aliases, crashes, reports, history, tokens

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bucket",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("known_bug", sa.String(200)),
        sa.Column("fixed_in", sa.String(500)),
        sa.Column("workaround", sa.Text),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
        sa.Column("merged_into", sa.String(64), sa.ForeignKey("bucket.id")),
        sa.Column("notified", sa.Integer, nullable=False),
    )
    for col in ("kind", "state", "known_bug", "count", "first_seen", "last_seen", "merged_into"):
        op.create_index(f"ix_bucket_{col}", "bucket", [col])
    op.create_table(
        "signature",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("bucket_id", sa.String(64), sa.ForeignKey("bucket.id"), nullable=False),
        sa.Column("added_at", sa.DateTime, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
    )
    op.create_index("ix_signature_bucket_id", "signature", ["bucket_id"])
    op.create_table(
        "bucket_alias",
        sa.Column("bucket_id", sa.String(64), sa.ForeignKey("bucket.id"), primary_key=True),
        sa.Column("title", sa.String(500), primary_key=True),
    )
    op.create_table(
        "crash",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("identity", sa.String(64), nullable=False, unique=True),
        sa.Column("bucket_id", sa.String(64), sa.ForeignKey("bucket.id"), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("kernel", sa.String(200)),
        sa.Column("distro", sa.String(64)),
        sa.Column("arch", sa.String(16)),
        sa.Column("seen", sa.DateTime, nullable=False),
        sa.Column("ingested_at", sa.DateTime, nullable=False),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("known_bug", sa.String(200)),
        sa.Column("fixed", sa.Boolean),
        sa.Column("fixed_in", sa.String(500)),
        sa.Column("workaround", sa.Text),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("pinned", sa.Boolean, nullable=False),
        sa.Column("report_kept", sa.Boolean, nullable=False),
    )
    for col in ("bucket_id", "signature", "host", "kernel", "seen"):
        op.create_index(f"ix_crash_{col}", "crash", [col])
    op.create_table(
        "crash_report",
        sa.Column("crash_id", sa.Integer, sa.ForeignKey("crash.id"), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "action",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("bucket_id", sa.String(64), nullable=False),
        sa.Column("other_id", sa.String(64)),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("undone_by", sa.Integer),
    )
    op.create_index("ix_action_bucket_id", "action", ["bucket_id"])
    op.create_index("ix_action_other_id", "action", ["other_id"])
    op.create_table(
        "token",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("secret_hash", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime),
    )
    op.create_table(
        "setting",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("setting", "token", "action", "crash_report", "crash", "bucket_alias", "signature", "bucket"):
        op.drop_table(table)
