"""The app store: apps built on the platform and their reviews."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow

if TYPE_CHECKING:
    from datalabs.db.models.accounts import User


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
