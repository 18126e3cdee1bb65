"""The audit log: who did what, when, from where and with what outcome, append-only and hash-chained.

`record(db, ...)` adds a record in the caller's transaction (an action that is not an HTTP request: a guest
opening a shared lab, a scheduled launch); `record_now(sessions, ...)` writes one in its own short transaction
and never raises (the middleware's path: an audit failure is logged loudly, the user's request stands)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from datalabs.audit import chain

log = logging.getLogger("datalabs.audit")

# column widths of audit_records (db/models/audit.py): longer values are cut, never refused
_WIDTHS = {"who": 128, "what": 200, "target": 500, "client": 64, "outcome": 32}


def _cut(value: str | None, field: str) -> str | None:
    return None if value is None else value[: _WIDTHS[field]]


def record(
    db: Session,
    *,
    who: str | None,
    what: str,
    outcome: str,
    target: str | None = None,
    client: str | None = None,
    detail: dict[str, Any] | None = None,
):
    """Append one record in `db`'s transaction (committed with the caller's work)."""
    return chain.append(
        db,
        who=_cut(who, "who"),
        what=_cut(what, "what") or "",
        outcome=_cut(outcome, "outcome") or "",
        target=_cut(target, "target"),
        client=_cut(client, "client"),
        detail=detail,
    )


def record_now(sessions: sessionmaker[Session], **fields: Any) -> bool:
    """Append one record in its own transaction; False (and an error in the log) if that failed."""
    try:
        with sessions() as db, db.begin():
            record(db, **fields)
        return True
    except Exception:
        log.exception("AUDIT RECORD NOT WRITTEN: %r", {k: fields.get(k) for k in ("who", "what", "outcome")})
        return False
