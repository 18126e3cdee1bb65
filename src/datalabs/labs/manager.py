"""`LabManager`: drives lab life cycles on the runtime backend, keeps the proxy's route table in step,
re-attaches to labs after a platform restart, and culls idle or ended labs.

DB work runs in worker threads (`anyio.to_thread`) so the event loop, which also serves the proxy,
never waits on the database."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from anyio import to_thread
from sqlalchemy import select

from datalabs import plugins, redaction
from datalabs.accounts.service import user_groups
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Lab
from datalabs.errors import Unavailable
from datalabs.labs import api_socket, service
from datalabs.labs.attach import Reattaching
from datalabs.labs.culling import Culling
from datalabs.labs.routing import route_of, team_of
from datalabs.labs.spec import SpecBuilder
from datalabs.proxy.activity import ActivityRecorder
from datalabs.proxy.base import RouteTable
from datalabs.runtimes.base import ProgressEvent, RuntimeBackend, StartError
from datalabs.runtimes.events import EventLog, tail_lines

log = logging.getLogger(__name__)


class LabManager(SpecBuilder, Reattaching, Culling):
    def __init__(self, settings: Settings, sessions, routes: RouteTable):
        self.settings, self.sessions, self.routes = settings, sessions, routes
        self.backends: dict[str, RuntimeBackend] = {}
        self.events: dict[str, EventLog] = {}
        self.activity = ActivityRecorder()  # the proxy records traffic here; the culler reads it
        self._tasks: set[asyncio.Task] = set()
        self.on_route_removed: Callable[[str], None] = lambda lab_id: None  # e.g. close the proxy's pool
        # Whether this process performs the manager's duties now (labs/duties.py: it holds the manager
        # lease). A manager that does not leaves launches and stops to the one that does, in the DB.
        self.holding = True
        self._starting: set[str] = set()  # labs this process is starting (not to be picked up twice)
        self._stopping: set[str] = set()  # labs this process is stopping
        self._shared_at = float("-inf")  # time.monotonic() of the last share_activity

    def backend_class(self, cluster: str = "local", backend: str = "local") -> type[RuntimeBackend]:
        """The runtime of a lab on `cluster`: the cluster's backend bound to it (Slurm), or `labs.backend` on
        a local cluster. A lab on a cluster no longer configured gets its own `backend` unbound: its saved
        state says where it runs, so it can still be re-attached to and stopped."""
        configured = next((c for c in self.settings.clusters if c.name == cluster), None)
        if configured is not None and configured.backend != "local":
            return self._installed(configured.backend).for_cluster(configured, self.platform)
        if configured is None and backend != "local":
            return self._installed(backend)
        return self._installed(self.settings.labs.backend)

    @property
    def platform(self) -> str:
        """This platform's tag in what it leaves on shared clusters (its Slurm jobs' comments)."""
        digest = hashlib.sha256(f"{self.settings.database_url}\0{self.settings.home}".encode())
        return digest.hexdigest()[:16]

    @staticmethod
    def _installed(name: str) -> type[RuntimeBackend]:
        if ":" in name:  # "package.module:Class", e.g. the test fake
            module, _, attr = name.partition(":")
            return getattr(importlib.import_module(module), attr)
        backends = plugins.load("datalabs.runtimes")
        if name not in backends:
            raise RuntimeError(
                f"runtime backend '{name}' is not installed (have: {', '.join(backends) or 'none'})"
            )
        return backends[name]

    # ---- launching ----------------------------------------------------------------------------------

    def spawn(
        self, lab_id: str, token: str, *, restarted: bool = False, open_command: list[str] | None = None
    ) -> None:
        """Start the lab in the background (called right after its record was committed, pending); a
        desktop lab launched to open a file starts with `open_command` (assets/opening: its app with the
        file) instead of its usual command, used as it is: no placeholder is filled in it."""
        if restarted:  # the log goes on from the last run's: mark where this one begins
            now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            self._log_line(lab_id, f"---- restarted at {now} UTC ----")
        if not self.holding:  # the manager replica starts it (start_queued), with a token of its own
            return
        self.events[lab_id] = EventLog()
        self.events[lab_id].add(0, "Queued")
        self._starting.add(lab_id)
        self._keep(asyncio.create_task(self._start(lab_id, token, open_command)))

    async def start_queued(self) -> None:
        """Start the labs launched through other replicas (pending, and started by nobody here)."""

        def queued() -> list[tuple[str, list[str] | None, str | None]]:
            with transaction(self.sessions) as db:
                found = []
                for lab in db.scalars(select(Lab).where(Lab.state == "pending")).all():
                    if lab.id in self._starting:
                        continue
                    command = (lab.runtime_state or {}).get("open_command")
                    found.append((lab.id, command, service.renew_token(db, self.settings, lab.id)))
                return found

        for lab_id, command, token in await to_thread.run_sync(queued):
            if token is not None and lab_id not in self._starting and self.holding:
                log.info("starting lab %s, launched through another replica", lab_id)
                self.spawn(lab_id, token, open_command=command)

    def _log_line(self, lab_id: str, line: str) -> None:
        path = self.settings.home / "labs" / lab_id / "lab.log"  # the platform's own folder, 0700
        if path.is_file():
            with path.open("a") as f:
                f.write(f"\n{line}\n")

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, lab_id: str, token: str, open_command: list[str] | None = None) -> None:
        try:
            await self._start_now(lab_id, token, open_command)
        finally:
            self._starting.discard(lab_id)

    async def _start_now(self, lab_id: str, token: str, open_command: list[str] | None) -> None:
        try:
            spec, owner, cluster = await to_thread.run_sync(self._spec, lab_id, token, open_command)
            if not await self._advance(lab_id, ("pending",), "starting"):
                return  # stopped or destroyed before its turn
            backend = self.backend_class(cluster)()
            await self._started(lab_id, owner, backend, backend.start(spec))
        except StartError as exc:
            await self._failed(lab_id, str(exc))
        except Exception as exc:  # a bug or a broken host must still end in a clear state
            log.exception("lab %s failed to start", lab_id)
            await self._failed(lab_id, f"internal error while starting: {exc}")

    async def _resume(self, lab_id: str, owner: str, backend: RuntimeBackend) -> None:
        """Follow the start of a lab the platform was starting when it stopped (a Slurm job, pending or
        starting), to the end, as `_start` would have."""
        try:
            await self._started(lab_id, owner, backend, backend.wait_started())
        except StartError as exc:
            await self._failed(lab_id, str(exc))
        except Exception as exc:
            log.exception("lab %s failed to start", lab_id)
            await self._failed(lab_id, f"internal error while starting: {exc}")

    async def _started(self, lab_id: str, owner: str, backend: RuntimeBackend, starting) -> None:
        """Await `starting` (the backend's start), route the lab and record it running. Its runtime state is
        saved whenever it changes meanwhile (a Slurm job id as soon as it exists), so a platform restart
        in the middle finds the job again instead of leaving it running unrecorded."""
        events = self.events.setdefault(lab_id, EventLog())
        self.backends[lab_id] = backend
        forward = asyncio.create_task(self._forward(backend.progress(), events, lab_id, backend))
        try:
            endpoint = await starting
        finally:
            forward.cancel()
        team = await to_thread.run_sync(team_of, self.sessions, lab_id)
        await self.routes.add_route(route_of(lab_id, owner, endpoint, team))
        self.activity(lab_id)
        if not await self._advance(lab_id, ("starting",), "running", runtime_state=backend.get_state()):
            # Stopped or destroyed while it started: it must not go on running without a record.
            await self.routes.delete_route(lab_id)
            self.on_route_removed(lab_id)
            self.activity.forget(lab_id)
            if self.backends.get(lab_id) is backend:
                del self.backends[lab_id]
            await backend.stop(now=True)
            return
        events.add(100, "Running", ready=True)

    async def _failed(self, lab_id: str, reason: str) -> None:
        """The start failed: the reason as the owner may read it (runtimes quote their logs, which name
        server paths; see redaction.py), stored and announced."""
        reason = await to_thread.run_sync(self._redact, lab_id, reason)
        # Not over a stop that came while it was starting: that lab stays "stopped by its owner".
        await self._advance(lab_id, ("pending", "starting"), "failed", reason)
        if (events := self.events.get(lab_id)) is not None:  # none once the lab was destroyed meanwhile
            events.add(100, reason, failed=True)

    def _redact(self, lab_id: str, reason: str) -> str:
        with self.sessions() as db:
            lab = db.get(Lab, lab_id)
            if lab is None:
                return redaction.platform(self.settings)(reason)
            teams = user_groups(db, lab.owner_id)
            return redaction.for_user(self.settings, lab.owner.name, teams)(reason)

    async def _forward(
        self, source: AsyncIterator[ProgressEvent], events: EventLog, lab_id: str, backend: RuntimeBackend
    ) -> None:
        saved: dict = {}
        async for event in source:
            if not (event.ready or event.failed):  # the manager announces the outcome itself
                events.add(event.progress, event.message)
            if (state := backend.get_state()) != saved and state.get("job_id"):
                await self._advance(lab_id, ("starting",), "starting", runtime_state=state)
                saved = state

    def runtime_dir(self, lab_id: str) -> Path:
        return api_socket.runtime_root(self.settings) / lab_id

    def remove_files(self, lab_id: str) -> None:
        """Delete a destroyed lab's runtime directory and logs."""
        shutil.rmtree(self.runtime_dir(lab_id), ignore_errors=True)
        shutil.rmtree(self.settings.home / "labs" / lab_id, ignore_errors=True)

    def api_url(self) -> str:
        s = self.settings
        return s.labs.api_url or s.server.public_url or f"http://127.0.0.1:{s.server.port}"

    async def _advance(
        self, lab_id: str, before: tuple[str, ...], state: str, reason: str = "", **fields
    ) -> bool:
        def write() -> bool:
            with self.sessions() as db:
                return service.advance(db, lab_id, before, state, reason, **fields)

        return await to_thread.run_sync(write)

    async def _set(self, lab_id: str, state: str, reason: str = "", **fields) -> None:
        def write() -> None:
            with self.sessions() as db:
                service.set_state(db, lab_id, state, reason, **fields)

        await to_thread.run_sync(write)

    # ---- stopping -----------------------------------------------------------------------------------

    async def stop(
        self, lab_id: str, reason: str = "stopped by its owner", *, state: str = "stopped"
    ) -> None:
        if not self.holding and lab_id not in self.backends:
            return await self._ask_manager_to_stop(lab_id, reason)
        self._stopping.add(lab_id)
        try:
            await self._stop_here(lab_id, reason, state)
        finally:
            self._stopping.discard(lab_id)

    async def _ask_manager_to_stop(self, lab_id: str, reason: str, wait: float = 30.0) -> None:
        """Stop a lab through the replica that manages labs: marked `stopping` with the reason, which its
        `stop_requested` carries out; returns once it did (a lab nobody started yet is stopped here)."""
        if await self._advance(lab_id, ("pending",), "stopped", reason):
            return
        marked = await self._advance(lab_id, ("starting", "running"), "stopping", reason)
        if not marked and await to_thread.run_sync(self._state_of, lab_id) != "stopping":
            return  # ended meanwhile, or gone
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if await to_thread.run_sync(self._state_of, lab_id) != "stopping":
                self.on_route_removed(lab_id)
                return
        raise Unavailable(
            "the lab is being stopped, but the replica that manages labs has not confirmed it yet: it will "
            "be stopped as soon as one does",
            code="manager_unavailable",
        )

    async def stop_requested(self) -> None:
        """Carry out the stops asked through other replicas (labs marked `stopping` that run here), and
        close the books on such labs that run nowhere."""

        def marked() -> list[tuple[str, str]]:
            with self.sessions() as db:
                return list(db.execute(select(Lab.id, Lab.reason).where(Lab.state == "stopping")).all())

        for lab_id, reason in await to_thread.run_sync(marked):
            if lab_id in self._stopping:
                continue
            if lab_id in self.backends:
                await self.stop(lab_id, reason or "stopped by its owner")
            elif lab_id not in self._starting:
                await self._advance(lab_id, ("stopping",), "stopped", reason or "stopped by its owner")

    async def _stop_here(self, lab_id: str, reason: str, state: str) -> None:
        before = await to_thread.run_sync(self._state_of, lab_id)
        await self._set(lab_id, "stopping")
        route = await self.routes.get_route(lab_id)
        await self.routes.delete_route(lab_id)
        self.on_route_removed(lab_id)
        backend = self.backends.pop(lab_id, None)
        if backend is not None:
            try:
                await backend.stop()
            except RuntimeError as exc:  # the cluster did not answer (SlurmUnavailable): the lab still runs
                self.backends[lab_id] = backend
                if route is not None:
                    await self.routes.add_route(route)
                await self._set(lab_id, before or "running")
                log.warning("could not stop lab %s: %s", lab_id, exc)
                raise Unavailable(
                    f"the lab could not be stopped: its cluster did not answer ({exc}); it keeps running, "
                    "try again in a minute",
                    code="cluster_unreachable",
                ) from None
            if getattr(backend, "oom_killed", lambda: False)():
                state, reason = "failed", "the lab was killed: it used more memory than its limit"
        self.activity.forget(lab_id)
        await self._set(lab_id, state, reason)
        self.events.setdefault(lab_id, EventLog()).add(100, f"Stopped: {reason}", failed=True)

    async def progress_elsewhere(self, lab_id: str, limit: float = 900.0) -> AsyncIterator[ProgressEvent]:
        """The start of a lab this process does not follow (another replica manages labs), from the states
        the database records: each change once, then its outcome (bounded, like a start's timeout)."""
        last, deadline = None, time.monotonic() + limit
        while time.monotonic() < deadline:
            found = await to_thread.run_sync(self._state_and_reason, lab_id)
            state, reason = found if found is not None else ("deleted", "the lab was deleted")
            if state == "running":
                yield ProgressEvent(100, "Running", ready=True)
                return
            if state not in ("pending", "starting"):
                yield ProgressEvent(100, reason or state, failed=True)
                return
            if state != last:
                last = state
                yield ProgressEvent(*((0, "Queued") if state == "pending" else (10, "Starting")))
            await asyncio.sleep(0.5)

    def _state_and_reason(self, lab_id: str) -> tuple[str, str] | None:
        with self.sessions() as db:
            lab = db.get(Lab, lab_id)
            return (lab.state, lab.reason) if lab else None

    def _state_of(self, lab_id: str) -> str | None:
        with self.sessions() as db:
            lab = db.get(Lab, lab_id)
            return lab.state if lab else None

    async def destroy(self, lab_id: str) -> None:
        """Stop the lab if it runs, then delete its record, runtime directory and logs."""

        def delete() -> bool:
            with self.sessions() as db:
                return service.delete_ended(db, lab_id)

        # A restart may claim the lab between the stop and the delete: then it is stopped again.
        for _ in range(3):
            current = await to_thread.run_sync(self._state_of, lab_id)
            if current is None:
                break
            if current in service.ACTIVE:
                await self.stop(lab_id, "destroyed")
            if await to_thread.run_sync(delete):
                break
        self.events.pop(lab_id, None)
        self.remove_files(lab_id)

    def logs(self, lab: Lab, tail: int) -> str:
        backend = self.backends.get(lab.id)
        if backend is not None:
            return backend.logs(tail)
        return tail_lines(self.settings.home / "labs" / lab.id / "lab.log", tail)

    async def let_go(self) -> None:
        """This process no longer manages labs (it lost the manager lease): it stops following them, starts
        and stops nothing more. The labs keep running; the replica that takes over re-attaches to them."""
        self.holding = False
        await self.shutdown()
        self.backends.clear()
        self._starting.clear()

    async def shutdown(self) -> None:
        """Platform stopping: labs keep running (they are re-attached at the next start)."""
        for task in list(self._tasks):
            task.cancel()
