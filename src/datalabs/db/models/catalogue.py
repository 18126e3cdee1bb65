"""The datalab catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow


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
