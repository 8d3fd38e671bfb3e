"""The fleet's tables (SQLAlchemy 2.0 typed mappings). The Alembic revisions in `migrations/` create them:
they are the schema's source; a test checks that the two agree.

Shape taken from ABRT Analytics (FAF): a crash row per occurrence with the columns queries filter on and
its report out of row (`crash_report`, bounded per bucket, while `crash` rows - the counts - are kept
forever); a bucket is FAF's Problem and `signature` its ReportHash (many hashes per bucket, so that a new
grouping scheme never splits history); syzbot's alternative titles are `bucket_alias`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "TITLE_MAX",
    "cut",
    "Action",
    "Base",
    "Bucket",
    "BucketAlias",
    "CrashReportRow",
    "CrashRow",
    "Setting",
    "Signature",
    "Token",
]

TITLE_MAX = 500


def cut(value: str | None, n: int) -> str | None:
    """A value for a String(n) column: PostgreSQL refuses longer ones (SQLite would keep them)."""
    return value if value is None or len(value) <= n else value[:n]


class Base(DeclarativeBase):
    pass


class Bucket(Base):
    """One bug as the fleet sees it. `id` is the first signature that created it (or a hand split's id)."""

    __tablename__ = "bucket"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), default="new", index=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    known_bug: Mapped[str | None] = mapped_column(String(200), index=True)
    fixed_in: Mapped[str | None] = mapped_column(String(500))
    workaround: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=0, index=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_seen: Mapped[datetime] = mapped_column(DateTime, index=True)
    merged_into: Mapped[str | None] = mapped_column(String(64), ForeignKey("bucket.id"), index=True)
    notified: Mapped[int] = mapped_column(Integer, default=0)  # the highest count threshold announced


class Signature(Base):
    """A bucket key: ktriage's bucket id of a crash (any scheme version), pointing at the bucket it leads to."""

    __tablename__ = "signature"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket_id: Mapped[str] = mapped_column(String(64), ForeignKey("bucket.id"), index=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)
    origin: Mapped[str] = mapped_column(String(16), default="ingest")  # ingest, rebucket


class BucketAlias(Base):
    """Another title a crash of this bucket was seen under (syzbot's alt titles)."""

    __tablename__ = "bucket_alias"

    bucket_id: Mapped[str] = mapped_column(String(64), ForeignKey("bucket.id"), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX), primary_key=True)


class CrashRow(Base):
    """One crash occurrence; kept forever (it is the count), its full report only while bounded."""

    __tablename__ = "crash"
    __table_args__ = (Index("ix_crash_bucket_seen", "bucket_id", "seen"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity: Mapped[str] = mapped_column(String(64), unique=True)  # content_key + log_time
    content_key: Mapped[str] = mapped_column(String(64), index=True)  # facts.crash_identity: source-independent
    log_time: Mapped[str | None] = mapped_column(String(40))  # the log's timestamp of the crash, if read from one
    bucket_id: Mapped[str] = mapped_column(String(64), ForeignKey("bucket.id"), index=True)
    signature: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    kind: Mapped[str] = mapped_column(String(32))
    host: Mapped[str | None] = mapped_column(String(255), index=True)
    kernel: Mapped[str | None] = mapped_column(String(200), index=True)
    distro: Mapped[str | None] = mapped_column(String(64))
    arch: Mapped[str | None] = mapped_column(String(16))
    seen: Mapped[datetime] = mapped_column(DateTime, index=True)
    ingested_at: Mapped[datetime] = mapped_column(DateTime)
    origin: Mapped[str] = mapped_column(String(200), default="cli")  # cli, api:<token name>
    known_bug: Mapped[str | None] = mapped_column(String(200))
    fixed: Mapped[bool | None] = mapped_column(Boolean)
    fixed_in: Mapped[str | None] = mapped_column(String(500))
    workaround: Mapped[str | None] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)  # placed by a hand split: rebucket leaves it
    report_kept: Mapped[bool] = mapped_column(Boolean, default=True)


class CrashReportRow(Base):
    """The crash's `ktriage.report/1` JSON (one crash, its input), out of the crash row."""

    __tablename__ = "crash_report"

    crash_id: Mapped[int] = mapped_column(Integer, ForeignKey("crash.id"), primary_key=True)
    body: Mapped[str] = mapped_column(Text)


class Action(Base):
    """Bucket history: creation, merges, splits, undos, state changes, rebuckets - who, why, when."""

    __tablename__ = "action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # created, merge, split, undo, state, rebucket
    bucket_id: Mapped[str] = mapped_column(String(64), index=True)
    other_id: Mapped[str | None] = mapped_column(String(64), index=True)
    who: Mapped[str] = mapped_column(String(200))
    why: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime)
    data: Mapped[str] = mapped_column(Text, default="{}")  # JSON: what undo needs
    undone_by: Mapped[int | None] = mapped_column(Integer)


class Token(Base):
    """A machine's write token: only its hash is stored; the secret is shown once at creation."""

    __tablename__ = "token"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class Setting(Base):
    """Per-store settings (the scrub key when none is given, so that scrubbing stays consistent)."""

    __tablename__ = "setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
