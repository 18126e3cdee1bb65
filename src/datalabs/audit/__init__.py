"""The audit log: who did what, when, from where and with what outcome, append-only and hash-chained.

`chain.append(db, ...)` adds a record in the caller's transaction (an action that is not an HTTP request: a
guest opening a shared lab, a single sign-on); `record_now(sessions, ...)` writes one in its own short
transaction and never raises (the middleware's path: an audit failure is logged loudly, the user's request
stands)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from datalabs.audit import chain

log = logging.getLogger("datalabs.audit")


def record_now(sessions: sessionmaker[Session], **fields: Any) -> bool:
    """Append one record (the fields of `chain.append`) in its own transaction; False (and an error in the
    log) if that failed."""
    try:
        with sessions() as db, db.begin():
            chain.append(db, **fields)
        return True
    except Exception:
        log.exception("AUDIT RECORD NOT WRITTEN: %r", {k: fields.get(k) for k in ("who", "what", "outcome")})
        return False
