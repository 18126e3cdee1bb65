"""Lab shares (issue 19): a running lab opened by its owner to a named user or a team, view or collaborate."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow


class LabShare(Base):
    """One grant: `grantee` is a user name or "team:<name>"; `mode` is "view" or "collaborate". A lab has at
    most one share per grantee (sharing again changes the mode)."""

    __tablename__ = "lab_shares"
    __table_args__ = (CheckConstraint("mode IN ('view', 'collaborate')", name="ck_lab_shares_mode"),)

    lab_id: Mapped[str] = mapped_column(ForeignKey("labs.id", ondelete="CASCADE"), primary_key=True)
    grantee: Mapped[str] = mapped_column(String(70), primary_key=True, index=True)
    mode: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
