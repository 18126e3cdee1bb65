"""Re-attaching to labs when this process starts managing them (a platform restart, or a takeover of the
manager lease from a replica that died), and cancelling cluster jobs nobody follows (a part of
`LabManager`)."""

from __future__ import annotations

import asyncio
import logging

from anyio import to_thread
from sqlalchemy import select

from datalabs.clusters.settings import ClusterSettings
from datalabs.db.models import Lab
from datalabs.labs import service
from datalabs.labs.routing import route_of, team_of
from datalabs.runtimes.events import EventLog

log = logging.getLogger(__name__)


class Reattaching:
    """LabManager's part that re-attaches to labs."""

    async def restore(self) -> None:
        """Re-attach to labs that were running when the platform stopped; close the books on the rest."""
        labs = await to_thread.run_sync(self._active_labs)
        for lab_id, owner, state, runtime_state, where in labs:
            if state == "pending":  # launched, never picked up: started by start_queued
                continue
            if not runtime_state:
                await self._set(lab_id, "failed", "the platform restarted while this lab was starting")
                continue
            backend = self.backend_class(*where)()
            backend.load_state(runtime_state)
            if state in ("pending", "starting"):
                if hasattr(backend, "wait_started"):  # a queued job goes on: follow it to its start
                    self.backends[lab_id] = backend  # known from now on (forgotten jobs are not)
                    self.events[lab_id] = EventLog()
                    self.events[lab_id].add(10, "The platform restarted: following the lab's start")
                    self._keep(asyncio.create_task(self._resume(lab_id, owner, backend)))
                    log.info("following the start of lab %s of %s again", lab_id, owner)
                else:  # nothing to follow a half-made start with: end what exists of it
                    await backend.stop(now=True)
                    await self._set(lab_id, "failed", "the platform restarted while this lab was starting")
                continue
            if await backend.poll() is not None:
                await backend.stop(now=True)
                await self._set(lab_id, "failed", "the lab ended while the platform was down")
                continue
            endpoint = backend.endpoint()
            self.backends[lab_id] = backend
            self.activity(lab_id)
            team = await to_thread.run_sync(team_of, self.sessions, lab_id)
            await self.routes.add_route(route_of(lab_id, owner, endpoint, team))
            log.info("re-attached to lab %s of %s", lab_id, owner)
        # In the background: a cluster that does not answer must not hold up the platform's start.
        for cluster in self.settings.clusters:
            if cluster.backend != "local":
                self._keep(asyncio.create_task(self._cancel_forgotten_jobs(cluster)))

    async def _cancel_forgotten_jobs(self, cluster: ClusterSettings) -> None:
        """Jobs of this platform on a cluster with no lab to follow them (submitted just before a crash,
        before their id was saved): cancelled, so that they hold no node for nobody. The labs followed
        are read once the cluster has answered (`self.backends`' live keys), so a lab launched meanwhile
        counts as followed."""
        try:
            cancelled = await self.backend_class(cluster.name).cancel_forgotten(self.backends.keys())
        except RuntimeError as exc:  # unsure what runs: cancel nothing, say so
            log.warning("cannot look for forgotten jobs on cluster %s: %s", cluster.name, exc)
            return
        if cancelled:
            log.warning(
                "cancelled Slurm jobs %s on cluster %s: no lab of this platform follows them",
                ", ".join(cancelled),
                cluster.name,
            )

    def _active_labs(self) -> list[tuple[str, str, str, dict]]:
        with self.sessions() as db:
            rows = db.scalars(select(Lab).where(Lab.state.in_(service.ACTIVE))).all()
            return [
                (lab.id, lab.owner.name, lab.state, lab.runtime_state, (lab.cluster, lab.backend))
                for lab in rows
            ]
