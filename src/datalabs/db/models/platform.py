"""Platform-wide state: counters, notices, usage and leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow


class Counter(Base):
    """Named counters; `catalogue` is bumped on every catalogue change so caches in every replica refresh."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Notice(Base):
    """An in-app notification for one user (e.g. the outcome of a review). Written and read through
    `notifications.service`; (user_id, read_at) is indexed for the header's unread count."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_user_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(default=None)


class UsageRecord(Base):
    """One ended session of a lab (launch or restart to its end), written when the lab ends so that its
    usage outlives a restart or a destroy of the lab. Times are the platform's until `accounted`: on a
    Slurm cluster, sacct's start, end and allocation replace them (walltime kills included), once."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("lab_id", "opened_at", name="uq_usage_records_lab_session"),
        Index("ix_usage_records_owner_ended", "owner_id", "ended_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[str] = mapped_column(String(32), index=True)  # the lab may be destroyed since
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    datalab: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(32), default="local")
    cpu: Mapped[float] = mapped_column(default=1.0)
    memory: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes
    gpu: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime]  # the session's start as the platform saw it: its key, never changed
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(32), default="stopped")  # the lab's, then Slurm's (TIMEOUT)
    job_id: Mapped[str] = mapped_column(String(64), default="")  # a Slurm lab's job
    accounted: Mapped[bool] = mapped_column(Boolean, default=True)  # False: sacct not read yet


class Lease(Base):
    """Who performs a duty that must run once across replicas (the lab manager, ...), until when. A
    replica holds it while it renews it in time; a dead one's lease runs out and another takes it over
    (db/leases.py)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), default="")
    expires_at: Mapped[datetime] = mapped_column()
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
