"""Catalogue changes, counted: the `catalogue` counter in the DB moves on every change (`bump`), and this
process counts the changes it committed itself, so its own snapshot refreshes on its next use."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from datalabs.db.models import Counter


def bump(db: Session) -> None:
    """Move the catalogue's generation: every process rebuilds its snapshot, this one on its next use
    after `db` commits, the others within `catalogue.refresh_interval` seconds."""
    counter = db.get(Counter, "catalogue")
    if counter is None:
        db.add(Counter(name="catalogue", value=1))
    else:
        counter.value += 1
    db.flush()
    db.info[_BUMPED] = True


# Catalogue changes this process committed: a Catalogue that saw fewer asks the DB at once.
_BUMPED = "datalabs.catalogue.bumped"


_changes_here = 0


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    global _changes_here
    if session.info.pop(_BUMPED, False):
        _changes_here += 1


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_BUMPED, None)  # nothing changed after all


def changes_here() -> int:
    """Catalogue changes this process committed so far."""
    return _changes_here
