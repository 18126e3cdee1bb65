"""Filtering the audit log: who/what/outcome exact, from/to on `at`, newest first with an id cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select

from datalabs.db.models import AuditRecord

MAX_LIMIT = 1000  # a page never holds more, whatever the caller asks


@dataclass(frozen=True)
class Filters:
    who: str | None = None
    what: str | None = None
    outcome: str | None = None
    start: datetime | None = None
    end: datetime | None = None


def matching(f: Filters, *, before: int | None = None, newest_first: bool = True) -> Select:
    q = select(AuditRecord)
    if f.who is not None:
        q = q.where(AuditRecord.who == f.who)
    if f.what is not None:
        q = q.where(AuditRecord.what == f.what)
    if f.outcome is not None:
        q = q.where(AuditRecord.outcome == f.outcome)
    if f.start is not None:
        q = q.where(AuditRecord.at >= f.start)
    if f.end is not None:
        q = q.where(AuditRecord.at <= f.end)
    if before is not None:
        q = q.where(AuditRecord.id < before)
    return q.order_by(AuditRecord.id.desc() if newest_first else AuditRecord.id)
