"""Retention: records older than settings.audit.retention_days are pruned, hourly, by the replica holding
the manager lease (labs/duties.ManagerDuties), so once across replicas; the chain stays verifiable from
the anchor (the hash of the last pruned record)."""

from __future__ import annotations

import asyncio
import logging

from datalabs.audit import chain
from datalabs.db.engine import transaction

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0  # seconds between two prunes (retention is counted in days)


def prune_once(sessions, retention_days: int) -> int:
    with transaction(sessions) as db:
        return chain.prune(db, retention_days)


async def run(settings, sessions, every: float = PRUNE_EVERY) -> None:
    """Prune now, then every `every` seconds, until cancelled; a failed prune is logged and retried."""
    while True:
        try:
            pruned = await asyncio.to_thread(prune_once, sessions, settings.audit.retention_days)
            if pruned:
                log.info(
                    "audit retention: %d records older than %d days pruned",
                    pruned,
                    settings.audit.retention_days,
                )
        except Exception:
            log.exception("audit retention")
        await asyncio.sleep(every)
