"""Culling: labs idle past the timeout are stopped and labs that ended by themselves are recorded, with a
notice for their owner; every replica's proxy shares when labs last saw traffic (a part of
`LabManager`)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

from anyio import to_thread
from sqlalchemy import or_, select, update

from datalabs.db.engine import transaction
from datalabs.db.models import Lab
from datalabs.db.types import utcnow
from datalabs.errors import Unavailable
from datalabs.labs import quota_check
from datalabs.notifications import service as notifications
from datalabs.runtimes.base import RuntimeBackend

log = logging.getLogger(__name__)


class Culling:
    """LabManager's part that culls labs."""

    async def cull_once(self) -> None:
        """Stop labs idle past the timeout; record labs that ended by themselves (crash, OOM kill)."""
        idle = self.settings.labs.idle_timeout
        elsewhere = await to_thread.run_sync(self._seen_elsewhere, list(self.backends))
        for lab_id, backend in list(self.backends.items()):
            try:
                await self._cull(lab_id, backend, idle, elsewhere.get(lab_id))
            except Unavailable as exc:  # a cluster did not answer the stop: the next round tries again
                log.warning("culling lab %s: %s", lab_id, exc.message)
        await quota_check.check(self)  # workspaces past their quota: read-only in these labs

    async def _cull(self, lab_id: str, backend: RuntimeBackend, idle: int, seen: datetime | None) -> None:
        idle_for = self.activity.idle_for(lab_id)
        if idle_for is None:
            return  # still starting
        if seen is not None:  # traffic through another replica's proxy
            idle_for = min(idle_for, (utcnow() - seen).total_seconds())
        code = await backend.poll()
        if code == 0:  # e.g. the user closed a desktop lab's app or ended its session: not a failure
            await self.stop(lab_id, "the lab ended by itself (its app or session was closed)")
        elif code is not None:
            oom = getattr(backend, "oom_killed", lambda: False)()
            if oom:
                reason = "the lab was killed: it used more memory than its limit"
            elif why := backend.end_reason():
                reason = f"the lab ended: {why}"
            else:
                reason = f"the lab exited by itself (code {code})"
            await self.stop(lab_id, reason, state="failed")
            await self._tell_owner(lab_id, f"stopped: {reason}")
        elif idle and idle_for > idle:
            await self.stop(lab_id, f"stopped after {_duration(idle)} without activity")
            await self._tell_owner(
                lab_id, f"was stopped after {_duration(idle)} without activity; your files are kept"
            )

    async def _tell_owner(self, lab_id: str, what: str) -> None:
        """A notice for the owner of a lab the culler stopped: they were probably not looking at it.
        (A lab that ended because its user closed it needs none.)"""

        def write() -> None:
            with transaction(self.sessions) as db:
                if lab := db.get(Lab, lab_id):
                    name = lab.name or lab.datalab
                    notifications.add(db, lab.owner_id, f"Your lab '{name}' {what}.", "/labs")

        await to_thread.run_sync(write)

    def _seen_elsewhere(self, lab_ids: list[str]) -> dict[str, datetime]:
        """When each lab last saw traffic, as the replicas' proxies shared it (`share_activity`)."""
        if not lab_ids:
            return {}
        with self.sessions() as db:
            rows = db.execute(select(Lab.id, Lab.last_activity).where(Lab.id.in_(lab_ids))).all()
        return {lab_id: seen for lab_id, seen in rows if seen is not None}

    async def share_activity(self) -> None:
        """Record in the DB when labs last saw traffic through this replica's proxy, for the manager
        replica's culler (each replica's proxy sees only its own share of a lab's traffic)."""
        now_monotonic, now = time.monotonic(), utcnow()
        fresh = {
            lab_id: now - timedelta(seconds=now_monotonic - seen)
            for lab_id, seen in self.activity.snapshot().items()
            if seen > self._shared_at
        }
        self._shared_at = now_monotonic
        if not fresh:
            return

        def write() -> None:
            with transaction(self.sessions) as db:
                for lab_id, at in fresh.items():
                    db.execute(
                        update(Lab)
                        .where(Lab.id == lab_id, or_(Lab.last_activity.is_(None), Lab.last_activity < at))
                        .values(last_activity=at)
                        .execution_options(synchronize_session=False)
                    )

        await to_thread.run_sync(write)

    async def run_culler(self) -> None:
        while True:
            await asyncio.sleep(self.settings.labs.cull_interval)
            try:
                await self.cull_once()
            except Exception:  # the culler must survive a bad lab
                log.exception("culling failed")


def _duration(seconds: int) -> str:
    """'60 minutes', or seconds below two minutes (a short test or demo timeout is not '0 minutes')."""
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
