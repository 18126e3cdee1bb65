"""ORM models. Schema changes go through an Alembic migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from datalabs.db.types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    full_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default="user")  # admin | moderator | user
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(default=None)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Group(Base):
    """A team: its members share a team workspace and see datalabs restricted to the group."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="group", cascade="all, delete-orphan")


class Membership(Base):
    __tablename__ = "memberships"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="member")  # owner | member | readonly

    group: Mapped[Group] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")


class AuthSession(Base):
    """A browser login. Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; `id` is the public handle used to list and revoke."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LabCode(Base):
    """A one-time code that lets a browser into one lab on the lab's own origin: issued by the platform
    to a logged-in session (user + lab), redeemed once on the lab's origin for a lab cookie. Only the
    SHA-256 of the code is stored; `used_at` makes it single-use across replicas."""

    __tablename__ = "lab_codes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lab_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginFailure(Base):
    """One failed login, counted per key (`user:<name>` and `client:<address>`) for throttling."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Datalab(Base):
    """A datalab definition; its metadata lives in its versions."""

    __tablename__ = "datalabs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="dir")  # builtin | dir | db
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[DatalabVersion]] = relationship(
        back_populates="datalab", cascade="all, delete-orphan", order_by="DatalabVersion.id"
    )


class DatalabVersion(Base):
    __tablename__ = "datalab_versions"
    __table_args__ = (UniqueConstraint("datalab_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    datalab_id: Mapped[int] = mapped_column(ForeignKey("datalabs.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column()
    source_path: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    datalab: Mapped[Datalab] = relationship(back_populates="versions")


class CatalogueProblem(Base):
    """A definition file that could not be loaded at the last catalogue load (shown to admins)."""

    __tablename__ = "catalogue_problems"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """Named counters; `catalogue` is bumped on every catalogue change so caches in every replica refresh."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Lab(Base):
    """One running (or ended) datalab of one user. `runtime_state` lets a restarted platform re-attach."""

    __tablename__ = "labs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    datalab: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="web")
    # pending -> starting -> running -> stopping -> stopped | failed
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    cpu: Mapped[float] = mapped_column(default=1.0)
    memory: Mapped[int] = mapped_column(BigInteger, default=2 * 10**9)  # bytes
    gpu: Mapped[int] = mapped_column(default=0)
    volumes: Mapped[list[str]] = mapped_column(default=list)
    backend: Mapped[str] = mapped_column(String(32), default="local")  # the cluster's: local | slurm
    cluster: Mapped[str] = mapped_column(String(64), default="local", server_default="local")
    runtime_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    token_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    last_activity: Mapped[datetime | None] = mapped_column(default=None)

    owner: Mapped[User] = relationship()


class TeamWorkspace(Base):
    """A team's shared workspace (created by an admin or a team owner); its files live under
    `workspaces/teams/<group>`. Members write, read-only members read."""

    __tablename__ = "team_workspaces"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    quota: Mapped[int | None] = mapped_column(BigInteger, default=None)  # bytes; None: the default
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[Group] = relationship()


class Volume(Base):
    """A read-only data volume: a host directory mounted into labs at `/media/data/<name>`."""

    __tablename__ = "volumes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    host_path: Mapped[str] = mapped_column(Text)
    allowed_groups: Mapped[list[str]] = mapped_column(default=list)  # empty: everyone
    mission: Mapped[list[str]] = mapped_column(default=list)
    domain: Mapped[str] = mapped_column(String(64), default="")
    tags: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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


class App(Base):
    """A datalab built on the platform by a user (the app store): its sources, builds, sharing and review.
    Built versions also appear as a `Datalab` (source "db") of the same name in the catalogue.

    Publication is per version (`AppVersion.published`): a moderator approves exactly the version
    submitted, and later builds stay private until they are submitted and approved too. `state` sums
    the app up and is kept by `builder.publish`: "submitted" while a review of `submitted_version` is
    open, else "published" while any version is published, else "rejected" after a rejection, else
    "private". `submitted_version` is the version under (or last through) review."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    base: Mapped[str] = mapped_column(String(64), default="jupyterlab")
    builder: Mapped[str] = mapped_column(String(32), default="uv")
    state: Mapped[str] = mapped_column(String(16), default="private")
    shared_users: Mapped[list[str]] = mapped_column(default=list)
    shared_groups: Mapped[list[str]] = mapped_column(default=list)
    featured: Mapped[bool] = mapped_column(Boolean, default=False)
    submitted_version: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship()
    versions: Mapped[list[AppVersion]] = relationship(
        back_populates="app", cascade="all, delete-orphan", order_by="AppVersion.id"
    )


class AppVersion(Base):
    """One version: immutable sources (`sources_path`), validated metadata, recipe and build outcome.
    `state`: queued -> building -> built | failed. `published`: approved by a moderator and not
    withdrawn, so everyone may see and launch it."""

    __tablename__ = "app_versions"
    __table_args__ = (UniqueConstraint("app_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    source_kind: Mapped[str] = mapped_column(String(16), default="upload")  # upload, git, workspace, import
    source_ref: Mapped[str] = mapped_column(Text, default="")
    sources_path: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requirements: Mapped[list[str]] = mapped_column(default=list)
    env_key: Mapped[str] = mapped_column(String(64), default="")
    env_path: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str] = mapped_column(Text, default="")
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    app: Mapped[App] = relationship(back_populates="versions")


class AppEvent(Base):
    """The history of an app: builds, shares, submissions, reviews (with the moderator's comment)."""

    __tablename__ = "app_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64), default="")
    actor: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


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


class LabPortReport(Base):
    """A Slurm lab's port as its job reported it to a replica that does not follow the lab's start (the
    token checked there against the start's saved digest); the manager replica takes it from here."""

    __tablename__ = "lab_port_reports"

    lab_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))  # of the start's token: the start it belongs to
    job_id: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)
