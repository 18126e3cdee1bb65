"""Per-user rows of a pipeline (its schedules and triggers): their owner and administrators see them; to
anyone else a row does not exist (404, as for a wrong id), so ids reveal nothing about other users."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.db.models import Pipeline
from datalabs.errors import NotFound

Row = TypeVar("Row")


def listed(db: Session, principal: Principal, model: type[Row], pipeline: Pipeline) -> list[Row]:
    query = select(model).where(model.pipeline_id == pipeline.id)
    if not principal.is_admin:
        query = query.where(model.owner_id == principal.user.id)
    return list(db.scalars(query.order_by(model.id)))


def fetch(db: Session, principal: Principal, model: type[Row], row_id: int, noun: str) -> Row:
    row = db.get(model, row_id)
    if row is None or not (principal.is_admin or row.owner_id == principal.user.id):
        raise NotFound(f"no {noun} {row_id} of yours", code=f"{noun}_not_found")
    return row
