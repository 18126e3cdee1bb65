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
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from anyio import to_thread
from sqlalchemy import or_, select, update

from datalabs import plugins, redaction
from datalabs.accounts import service as accounts
from datalabs.accounts.service import user_groups
from datalabs.catalogue.schema import NOTEBOOKS_MOUNT, DatalabMeta, RuntimeSpec
from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Datalab, DatalabVersion, Lab
from datalabs.db.types import utcnow
from datalabs.errors import DatalabsError, Unavailable
from datalabs.labs import api_socket, quota_check, service
from datalabs.labs.routing import route_of
from datalabs.notifications import service as notifications
from datalabs.proxy.activity import ActivityRecorder
from datalabs.proxy.base import RouteTable
from datalabs.runtimes.base import DesktopApp, LabSpec, Mount, ProgressEvent, RuntimeBackend, StartError
from datalabs.runtimes.events import EventLog, tail_lines
from datalabs.sandbox.bwrap import ApiAccess
from datalabs.sandbox.policy import Policy
from datalabs.volumes import service as volume_service
from datalabs.workspaces import layout
from datalabs.workspaces import service as workspace_service

log = logging.getLogger(__name__)
SOCKET = "/run/datalab/lab.sock"


class LabManager:
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
        await self.routes.add_route(route_of(lab_id, owner, endpoint))
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

    def _spec(
        self, lab_id: str, token: str, open_command: list[str] | None = None
    ) -> tuple[LabSpec, str, str]:
        with self.sessions() as db:
            lab = db.get(Lab, lab_id)
            version = db.scalar(
                select(DatalabVersion)
                .join(Datalab)
                .where(Datalab.name == lab.datalab, DatalabVersion.version == lab.version)
            )
            meta = DatalabMeta.model_validate(version.meta)
            owner, cluster = lab.owner.name, lab.cluster
            identity = accounts.sandbox_identity(db, self.settings, lab.owner)
            mounts = [
                Mount(
                    workspace_service.personal(self.settings, lab.owner).tree.root,
                    layout.LAB_MOUNT,
                    readonly=False,
                )
            ]
            # Its own home, not the workspace: dot-folders and app settings stay out of the owner's files.
            home = layout.lab_home(lab.datalab)
            if identity is not None:
                identity = replace(identity, home=home)  # Java and others read it from the passwd entry
            quota_check.prepare(self.settings, db, lab.owner)  # project quotas: limits set before any write
            # Only teams that have a workspace; read-only members get it read-only; others never see it.
            for team, readonly in workspace_service.mountable_teams(db, lab.owner):
                mounts.append(
                    Mount(
                        workspace_service.team_root(db, self.settings, team),
                        f"/media/home/team_workspaces/{team}",
                        readonly=readonly,
                    )
                )
            # Volumes chosen at launch, checked again: access may have been withdrawn since.
            try:
                mounts += volume_service.mount_plan(db, self.settings, lab.owner, lab.volumes)
            except DatalabsError as exc:
                raise StartError(f"cannot mount the chosen data volumes: {exc.message}") from None
            if version.source_path:
                mounts.append(Mount(Path(version.source_path).parent, NOTEBOOKS_MOUNT, readonly=True))
            built = _built_environment(self.settings, version.meta)
            mounts += built.mounts
        rt = meta.runtime
        secret = service.new_secret()
        network = self.settings.labs.network
        api = (
            ApiAccess(api_socket.socket_dir(self.settings), self.settings.labs.api_port)
            if network != "host"
            else None
        )
        policy = Policy.of(self.settings, identity, network, pids_max=self.settings.sandbox.pids_max, api=api)
        base_url = f"/datalabs/{lab_id}/"
        fill = {"socket": SOCKET, "base_url": base_url, "secret": secret}
        header_name, _, header_value = rt.secret_header.format(**fill).partition(":")
        lab_dir = self.settings.home / "labs" / lab_id
        command = [
            part.format(**fill) for part in (rt.desktop.command if rt.kind == "desktop" else rt.command)
        ]
        if open_command and rt.kind == "desktop" and rt.desktop.command:
            command = list(open_command)
        if start := _start_page(rt):
            command.append(f"--LabApp.default_url={start}")
        env = {
            "DATALAB_ID": lab_id,
            "DATALABS_API_URL": self.api_url() if api is None else f"http://127.0.0.1:{api.port}",
            "DATALABS_TOKEN": token,
            rt.secret_env: secret,
            "HOME": home,
            "JUPYTER_RUNTIME_DIR": "/run/datalab/jupyter",
            # Each lab its own JupyterLab layout: a second lab does not reopen the first one's notebooks.
            "JUPYTERLAB_WORKSPACES_DIR": "/run/datalab/jupyterlab-workspaces",
            "DATALAB_TITLE": meta.title,  # a desktop lab's name in VNC
            **built.env,  # a version built on the platform: its environment (default kernel, PATH)
        }
        spec = LabSpec(
            lab_id=lab_id,
            owner=owner,
            kind=rt.kind,
            command=command,
            runtime_dir=self.runtime_dir(lab_id),
            log_path=lab_dir / "lab.log",
            env=env,
            mounts=mounts,
            cpu=lab.cpu,
            memory_bytes=lab.memory,
            gpu=lab.gpu,
            secret=secret,
            secret_headers={header_name.strip(): header_value.strip()},
            ready_path=rt.ready_path.format(**fill),
            start_timeout=self.settings.labs.start_timeout,
            policy=policy,
            platform_url=self.api_url(),  # where a Slurm node reports its lab's port (endpoint "port")
            **_desktop_apps(rt),
        )
        return spec, owner, cluster

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

    # ---- restart and culling ------------------------------------------------------------------------

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
            await self.routes.add_route(route_of(lab_id, owner, endpoint))
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


def _built_environment(settings: Settings, meta: dict):
    """Mounts and variables of the environment an app version or a catalogue datalab was built into
    (none for datalabs on the platform's environment)."""
    from datalabs.builder.base import LabEnvironment, get_builder

    build = meta.get("_build") or {}
    if build.get("key") and not build.get("env"):  # a catalogue datalab whose environment is not built
        from datalabs.catalogue.builds import unbuilt_reason

        raise StartError(f"this version cannot start: {unbuilt_reason(build)}")
    if not build.get("env"):
        return LabEnvironment()
    env = Path(build["env"])
    if not (env / ".complete").is_file():
        raise StartError("this version's environment is missing; build the datalab again")
    return get_builder(build.get("builder", "uv"), env.parent).lab_environment(env)


def _start_page(rt: RuntimeSpec) -> str | None:
    """Where a JupyterLab goes first (from its base URL): the datalab's `start`, a notebook or folder
    below the lab's root, opened by JupyterLab's /lab/tree/ route. None for other labs."""
    root = rt.jupyter_root()
    if not rt.start or root is None or not PurePosixPath(rt.start).is_relative_to(root):
        return None
    return "/lab/tree/" + quote(str(PurePosixPath(rt.start).relative_to(root)))


def _desktop_apps(rt: RuntimeSpec) -> dict:
    """LabSpec fields of a desktop datalab with several apps (nothing for other datalabs)."""
    if rt.kind != "desktop" or not rt.desktop or not rt.desktop.apps:
        return {}
    apps = tuple(DesktopApp(a.name, tuple(a.command), a.autostart) for a in rt.desktop.apps)
    return {"apps": apps, "samp_hub": rt.desktop.samp_hub}


def _duration(seconds: int) -> str:
    """'60 minutes', or seconds below two minutes (a short test or demo timeout is not '0 minutes')."""
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
