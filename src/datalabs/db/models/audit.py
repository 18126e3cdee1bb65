"""The audit log (issue 19): append-only, hash-chained records of security-relevant actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow


class AuditRecord(Base):
    """One action: who (user name, or the name tried for a failed login), what (route template or named
    action), target, when (UTC), client address, outcome, a small JSON detail (never secrets). `hash` is
    sha256 over the record's canonical fields and `prev_hash`, so an edit, a deletion or a reorder breaks
    the chain."""

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    who: Mapped[str | None] = mapped_column(String(128), default=None, index=True)
    what: Mapped[str] = mapped_column(String(200), index=True)
    target: Mapped[str | None] = mapped_column(String(500), default=None)
    client: Mapped[str | None] = mapped_column(String(64), default=None)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's single head row (id 1): the last record's hash, locked (SELECT ... FOR UPDATE) by every
    append so replicas never fork the chain; `anchor` is the hash of the last record retention pruned."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    anchor: Mapped[str] = mapped_column(String(64))
