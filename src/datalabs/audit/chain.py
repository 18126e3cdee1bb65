"""The hash chain: append a record under the head row's lock, verify the chain, prune old records.

Each record's hash is sha256 over a canonical JSON of its fields and the previous record's hash; the head
row (id 1) holds the last hash and, after pruning, the anchor (the hash of the last pruned record)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datalabs.db.models import AuditHead, AuditRecord
from datalabs.db.types import utcnow

GENESIS = "0" * 64
# column widths of audit_records (db/models/audit.py): longer values are cut, never refused
WIDTHS = {"who": 128, "what": 200, "target": 500, "client": 64, "outcome": 32}


def _cut(value: str | None, field: str) -> str | None:
    return None if value is None else value[: WIDTHS[field]]


def digest(r: AuditRecord) -> str:
    fields = [r.id, r.at.isoformat(), r.who, r.what, r.target, r.client, r.outcome, r.detail, r.prev_hash]
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _head(db: Session) -> AuditHead:
    # a no-op write first: takes SQLite's write lock (FOR UPDATE is ignored there) and PostgreSQL's row lock
    db.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=AuditHead.last_hash))
    head = db.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:  # migration 0018 inserts it; a database without it gets it once, races included
        try:
            with db.begin_nested():
                db.add(AuditHead(id=1, last_hash=GENESIS, anchor=GENESIS))
        except IntegrityError:
            pass  # another appender inserted it first
        head = db.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    return head


def append(
    db: Session,
    *,
    who: str | None,
    what: str,
    outcome: str,
    target: str | None = None,
    client: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """Add one record in the caller's transaction (committed with the caller's work); the head row's lock
    serialises appends. Values longer than their columns are cut, never refused."""
    head = _head(db)
    rec = AuditRecord(
        at=utcnow(),
        who=_cut(who, "who"),
        what=_cut(what, "what") or "",
        target=_cut(target, "target"),
        client=_cut(client, "client"),
        outcome=_cut(outcome, "outcome") or "",
        detail=detail,
        prev_hash=head.last_hash,
        hash="",
    )
    db.add(rec)
    db.flush()
    rec.hash = digest(rec)
    head.last_hash = rec.hash
    return rec


@dataclass
class Break:
    id: int
    at: datetime
    why: str


def verify(db: Session) -> Break | None:
    """Walk the chain in id order; None when every record verifies, else the first that does not."""
    head = db.get(AuditHead, 1)
    prev = head.anchor if head else GENESIS
    last = None
    for rec in db.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars():
        if rec.prev_hash != prev:
            return Break(rec.id, rec.at, "previous hash does not match (record missing or reordered)")
        if digest(rec) != rec.hash:
            return Break(rec.id, rec.at, "hash does not match its fields (record edited)")
        prev = last = rec.hash
    if head is not None and last is not None and head.last_hash != last:
        return Break(0, utcnow(), "the head does not match the last record (records removed at the end)")
    return None


def prune(db: Session, retention_days: int) -> int:
    """Delete records older than the retention; the last one deleted becomes the chain's anchor."""
    head = _head(db)
    cutoff = utcnow() - timedelta(days=retention_days)
    last = db.execute(
        select(AuditRecord).where(AuditRecord.at < cutoff).order_by(AuditRecord.id.desc()).limit(1)
    ).scalar_one_or_none()
    if last is None:
        return 0
    head.anchor = last.hash
    return db.execute(delete(AuditRecord).where(AuditRecord.id <= last.id)).rowcount
