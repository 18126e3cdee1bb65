"""Running labs and the storage they mount."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow

if TYPE_CHECKING:
    from datalabs.db.models.accounts import Group, User

_ACTIVE_STATES = "state IN ('pending', 'starting', 'running')"
ACTIVE_TEAM_LAB = f"team IS NOT NULL AND model IS NULL AND {_ACTIVE_STATES}"
ACTIVE_MODEL_LAB = f"team IS NOT NULL AND model IS NOT NULL AND {_ACTIVE_STATES}"


class Lab(Base):
    """One running (or ended) datalab of one user. `runtime_state` lets a restarted platform re-attach."""

    __tablename__ = "labs"
    # One active (pending/starting/running) team lab per team and datalab (e.g. tracking server), and one
    # serving lab per team and model version: two members launching at once get the same lab.
    __table_args__ = (
        Index(
            "ux_labs_team_datalab_active",
            "team",
            "datalab",
            unique=True,
            sqlite_where=text(ACTIVE_TEAM_LAB),
            postgresql_where=text(ACTIVE_TEAM_LAB),
        ),
        Index(
            "ux_labs_team_model_active",
            "team",
            "datalab",
            "model",
            unique=True,
            sqlite_where=text(ACTIVE_MODEL_LAB),
            postgresql_where=text(ACTIVE_MODEL_LAB),
        ),
    )

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
    # A team-scoped lab (a datalab with `runtime.scope: team`): every member of this team may use it.
    team: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    # The team whose MLflow tracking server an ordinary lab logs to (MLFLOW_TRACKING_URI); None: none.
    tracking_team: Mapped[str | None] = mapped_column(String(64), default=None)
    # A model-serving lab: the registered model version it serves ("models:/<name>/<version>").
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    last_activity: Mapped[datetime | None] = mapped_column(default=None)

    owner: Mapped[User] = relationship()


class LabPortReport(Base):
    """A Slurm lab's port as its job reported it to a replica that does not follow the lab's start (the
    token checked there against the start's saved digest); the manager replica takes it from here."""

    __tablename__ = "lab_port_reports"

    lab_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))  # of the start's token: the start it belongs to
    job_id: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)


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
