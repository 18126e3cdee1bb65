"""Pipelines, their runs, schedules and notifications."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow

if TYPE_CHECKING:
    from datalabs.db.models.accounts import User


class Pipeline(Base):
    """A CWL pipeline: system pipelines are visible to everyone, user pipelines to their owner, the
    allowed users and the allowed groups (and admins). Its documents live in its immutable versions."""

    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[str]] = mapped_column(default=list)
    system: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    allowed_users: Mapped[list[str]] = mapped_column(default=list)
    allowed_groups: Mapped[list[str]] = mapped_column(default=list)
    engine: Mapped[str] = mapped_column(String(32), default="cwltool")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User | None] = relationship()
    versions: Mapped[list[PipelineVersion]] = relationship(
        back_populates="pipeline", cascade="all, delete-orphan", order_by="PipelineVersion.id"
    )


class PipelineVersion(Base):
    """One published version: the packed CWL document (self-contained JSON), never changed afterwards."""

    __tablename__ = "pipeline_versions"
    __table_args__ = (UniqueConstraint("pipeline_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    notes: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")  # the document as given (code view)
    packed: Mapped[dict[str, Any]] = mapped_column()  # cwltool-packed, what engines run
    # Data files the document names (defaults, literals, $schemas): path -> base64 content (0008)
    files: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)
    digest: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    pipeline: Mapped[Pipeline] = relationship(back_populates="versions")


class PipelineRun(Base):
    """One execution, and its place in the durable queue: queued -> running -> succeeded | failed |
    cancelled. A running run is leased by one worker until `lease_until`; a worker that dies stops
    renewing and the run is re-queued (or failed after `max_attempts`)."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index("ix_pipeline_runs_state_created", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("pipeline_versions.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_schedules.id", ondelete="SET NULL"), default=None
    )
    engine: Mapped[str] = mapped_column(String(32), default="cwltool")
    # The configured cluster (`[[clusters]]`) the run's jobs go to; it chooses the engine's placement.
    cluster: Mapped[str] = mapped_column(String(64), default="local", server_default="local")
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output_space: Mapped[str] = mapped_column(String(100), default="me")
    output_path: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    notify: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout: Mapped[int] = mapped_column(Integer, default=3600)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)
    worker: Mapped[str] = mapped_column(String(100), default="")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # What started it, when a trigger did (0016): {trigger, kind, event, depth, after_run?}.
    triggered_by: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)
    # The team whose MLflow tracking server its tools log to, named at submit (0022); None: the first of
    # the owner's teams with one running (pipelines/tracking.py).
    tracking_team: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)

    pipeline: Mapped[Pipeline] = relationship()
    version: Mapped[PipelineVersion] = relationship()
    owner: Mapped[User] = relationship()


class PipelineSchedule(Base):
    """A cron rule that creates runs of a pipeline with fixed inputs."""

    __tablename__ = "pipeline_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64), default="")  # empty: the newest at each fire
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    cron: Mapped[str] = mapped_column(String(100))
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output_space: Mapped[str] = mapped_column(String(100), default="me")
    notify: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cluster: Mapped[str] = mapped_column(String(64), default="", server_default="")  # "": the owner's first
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_due: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    pipeline: Mapped[Pipeline] = relationship()
    owner: Mapped[User] = relationship()


class ScheduleFire(Base):
    """One due time of a schedule, recorded once: the unique key makes each due time fire exactly once
    whatever the number of schedulers or restarts."""

    __tablename__ = "pipeline_schedule_fires"
    __table_args__ = (UniqueConstraint("schedule_id", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("pipeline_schedules.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column()
    run_id: Mapped[str | None] = mapped_column(String(32), default=None)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)  # missed while down (policy: latest only)
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunNotification(Base):
    """One delivery of a run's notification (an e-mail to its recipients, or one webhook call). Written
    as `sending` in the transaction that marks the run notified, so a crash before the outcome is known
    leaves the record; another worker sends it again, with the same key, once the sender's hold runs out
    (pipelines/deliveries.py); then `delivered` or `failed` with the reason."""

    __tablename__ = "run_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(Text)  # the recipients ("a@x, b@y") or the webhook's URL
    state: Mapped[str] = mapped_column(String(16), default="sending")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Effectively once (pipelines/deliveries.py): the idempotency key every send of this delivery carries
    # (None on records made before revision 0014), the worker sending it and until when it may (after that
    # another worker sends it, with the same key), and how many sends were started.
    key: Mapped[str | None] = mapped_column(String(64), default=None, unique=True, index=True)
    sender: Mapped[str] = mapped_column(String(128), default="")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_run_notifications_state_lease", "state", "lease_until"),)


class PipelineTrigger(Base):
    """A rule that starts runs of a pipeline on an event (pipelines/triggers.py): new data in a watched
    folder or the asset index, a signed webhook call, or another pipeline's run finishing. `secret` is
    the webhook's HMAC key (kept: verifying needs it; shown once, at creation)."""

    __tablename__ = "pipeline_triggers"

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64), default="")  # empty: the newest at each fire
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # new_data | webhook | run_finished
    name: Mapped[str] = mapped_column(String(100), default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)  # fixed inputs; the event's are added
    output_space: Mapped[str] = mapped_column(String(100), default="me")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    secret: Mapped[str] = mapped_column(String(128), default="")
    # Events older than this (files, assets) never fire it: set at creation and at each resume.
    armed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    pipeline: Mapped[Pipeline] = relationship()
    owner: Mapped[User] = relationship()


class TriggerEvent(Base):
    """One event of a trigger, recorded once: the unique (trigger, event key) makes each event queue at most
    one run whatever the number of watchers, replicas or restarts. `run_id` is the run it queued; without
    one, `skipped` says why (inputs refused, chain depth reached, ...)."""

    __tablename__ = "trigger_events"
    __table_args__ = (UniqueConstraint("trigger_id", "event_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("pipeline_triggers.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text, default="")  # what happened, as the owner may read it
    run_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    skipped: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
