"""What runs in the background of a platform process, split into what one replica at a time does for
all (`ManagerDuties`, held by the "manager" lease) and what every replica does (`ReplicaSync`).

The manager replica re-attaches to labs when it takes over (`LabManager.restore`), starts labs launched
through other replicas, carries out stops asked through them, culls, serves the labs' API socket and
runs the asset index's writer. A replica that loses the lease (it could not renew it in time) stops
all of that at once; the labs keep running and the next holder re-attaches to them. The embedded
default is one process holding the lease from its first second.

Every replica with the proxy role refreshes its route table from the database and shares when its
proxy last saw traffic to each lab, which the manager's culler reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from datalabs.accounts import auth
from datalabs.audit import retention as audit_retention
from datalabs.config import Settings
from datalabs.db.leases import Lease, LeaseKeeper
from datalabs.labs import port_reports
from datalabs.labs.manager import LabManager
from datalabs.pipelines import trigger_watch
from datalabs.proxy.auth import CachedAuthenticator
from datalabs.proxy.routes import SharedRouteTable

log = logging.getLogger(__name__)
LEASE = "manager"
ACTIVITY_EVERY = 10.0  # seconds between two shares of proxy activity (the idle timeout is hours)


class ManagerDuties:
    def __init__(
        self,
        settings: Settings,
        sessions,
        labs: LabManager,
        *,
        start_more: Callable[[], Awaitable[None]] | None = None,
        stop_more: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings, self.labs = settings, labs
        self.lease = Lease(sessions, LEASE, settings.server.lease_ttl)
        every = min(1.0, settings.server.lease_ttl / 5)
        self.keeper = LeaseKeeper(self.lease, self._gain, self._loss, every=every)
        self._start_more, self._stop_more = start_more, stop_more
        self._tasks: list[asyncio.Task] = []
        self._runner: asyncio.Task | None = None
        labs.holding = False

    async def start(self) -> None:
        """Try for the lease once now (a lone process is the manager before it serves its first request),
        then keep trying and renewing in the background."""
        await self.keeper.step()
        self._runner = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.keeper.every)
            try:
                await self.keeper.step()
            except Exception:  # a duty's start failed: the next step tries again
                log.exception("manager duties")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self.keeper.held:
            self.keeper.held = False
            await self._loss()
            await asyncio.to_thread(self.keeper._release_quietly)

    async def _gain(self) -> None:
        self.labs.holding = True
        if self._start_more is not None:
            await self._start_more()  # the labs' API socket first: re-attached labs' launchers use it
        await self.labs.restore()
        self._tasks = [
            asyncio.create_task(self.labs.run_culler()),
            asyncio.create_task(self._follow_requests()),
            asyncio.create_task(trigger_watch.watch(self.settings, self.labs.sessions)),  # new-data triggers
            asyncio.create_task(audit_retention.run(self.settings, self.labs.sessions)),  # old audit records
        ]

    async def _loss(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        await self.labs.let_go()
        if self._stop_more is not None:
            await self._stop_more()

    async def _follow_requests(self) -> None:
        """Launches and stops asked through other replicas (or before this one took over)."""
        while True:
            try:
                await self.labs.start_queued()
                await self.labs.stop_requested()
                await port_reports.hand_over(self.labs.sessions)  # Slurm jobs' ports sent to other replicas
            except Exception:
                log.exception("following launches and stops")
            await asyncio.sleep(self.settings.server.sync_interval)


class ReplicaSync:
    """Every replica's share: its route table follows the database, its proxy's activity goes there, and
    its cache of who sessions and tokens are for is dropped when another replica changed one."""

    def __init__(
        self,
        settings: Settings,
        sessions,
        routes: SharedRouteTable | None,
        labs: LabManager,
        authenticator: CachedAuthenticator,
    ) -> None:
        self.settings, self.sessions, self.routes, self.labs = settings, sessions, routes, labs
        self.authenticator = authenticator
        self._generation: int | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.labs.share_activity()  # the last minutes' traffic is not lost to the culler

    async def _run(self) -> None:
        every = self.settings.server.sync_interval
        shared = 0.0
        while True:
            await asyncio.sleep(every)
            try:
                await self._follow_auth_changes()
                if self.routes is not None:
                    changes = await self.routes.sync()
                    for lab_id in changes.removed:
                        self.labs.on_route_removed(lab_id)
                shared += every
                if shared >= ACTIVITY_EVERY:
                    shared = 0.0
                    await self.labs.share_activity()
            except Exception:  # the database is away for a moment: the next round tries again
                log.exception("replica sync")

    async def _follow_auth_changes(self) -> None:
        def read() -> int:
            with self.sessions() as db:
                return auth.generation(db)

        generation = await asyncio.to_thread(read)
        if self._generation is not None and generation != self._generation:
            self.authenticator.forget_all()
        self._generation = generation
