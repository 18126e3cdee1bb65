"""Runs builds in the background, one at a time per process, and streams their logs.

The build log is a file next to the version's sources, appended line by line as the builder speaks,
so an SSE reader (and a reader after the build) sees the same text. Versions left `queued` or
`building` by a stopped platform are failed at the next start with that reason.

Replicas: a build runs in the process that accepted it, which holds the lease `build:<version id>`
(db/leases.py) from submission to the end, renewed every `RENEW` seconds. A replica that starts fails only
the builds whose lease ran out or whose holder's process is gone, never those another replica is running.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from datalabs import redaction
from datalabs.accounts import service as accounts
from datalabs.builder import publish, wheels
from datalabs.builder.base import BuildError, BuildRequest, get_builder
from datalabs.builder.meta import REQUIREMENTS_FILE
from datalabs.builder.service import envs_dir, log_path, record
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.leases import Lease, holder_gone
from datalabs.db.models import AppVersion, User
from datalabs.db.types import utcnow
from datalabs.sandbox.policy import Policy

log = logging.getLogger(__name__)


TTL = 60.0  # seconds a build's lease outlives its holder's last renewal
RENEW = 10.0
GRACE = timedelta(seconds=60)  # a version just recorded, whose lease its replica is about to take


class BuildQueue:
    def __init__(self, settings: Settings, sessions, workers: int = 1):
        self.settings, self.sessions = settings, sessions
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build")
        self._done: dict[int, threading.Event] = {}
        self._leases: dict[int, Lease] = {}  # builds queued or running here
        self._leases_lock = threading.Lock()  # a lease dropped at a build's end is never renewed after
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def submit(self, version_id: int) -> None:
        """Queue a recorded (committed) version for building."""
        lease = Lease(self.sessions, f"build:{version_id}", ttl=TTL)
        with self._leases_lock:
            lease.acquire()
            self._leases[version_id] = lease
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew, name="build-leases", daemon=True)
            self._renewer.start()
        self._done[version_id] = threading.Event()
        self._pool.submit(self._run_safely, version_id)

    def _renew(self) -> None:
        while not self._stop.wait(RENEW):
            with self._leases_lock:
                for version_id, lease in self._leases.items():
                    try:
                        lease.acquire()
                    except Exception as exc:  # the database is away: the lease lasts TTL, try again soon
                        log.warning("build %s: could not renew its lease: %s", version_id, exc)

    def wait(self, version_id: int, timeout: float | None = None) -> bool:
        event = self._done.get(version_id)
        return True if event is None else event.wait(timeout)

    def reap(self) -> int:
        """Fail the builds a stopped process left unfinished (not those a live replica is running)."""
        with transaction(self.sessions) as db:
            unfinished = db.scalars(select(AppVersion).where(AppVersion.state.in_(("queued", "building"))))
            stale = [v for v in unfinished if self._abandoned(v)]
            for v in stale:
                v.state, v.error, v.ended_at = "failed", "the platform restarted during the build", utcnow()
            return len(stale)

    def _abandoned(self, version: AppVersion) -> bool:
        held = Lease(self.sessions, f"build:{version.id}").current()
        if held is None:  # never leased: recorded by a process that died at once, or just now
            return utcnow() - version.created_at > GRACE
        holder, expires_at = held
        return expires_at < utcnow() or holder_gone(holder)

    def shutdown(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run_safely(self, version_id: int) -> None:
        try:
            self.run(version_id)
        except Exception:  # a bug must still end the build in a clear state
            log.exception("build of version %s crashed", version_id)
            self._finish(version_id, error="internal error during the build; see the platform log")
        finally:
            with self._leases_lock:
                lease = self._leases.pop(version_id, None)
                if lease is not None:
                    lease.drop()
            self._done.pop(version_id, threading.Event()).set()

    def run(self, version_id: int) -> None:
        with transaction(self.sessions) as db:
            v = db.get(AppVersion, version_id)
            v.state, v.started_at = "building", utcnow()
            app_name, number, builder_name = v.app.name, v.version, v.app.builder
            sources = Path(v.sources_path)
            author = db.scalar(select(User).where(User.name == v.created_by))
            identity = accounts.sandbox_identity(db, self.settings, author) if author else None
            request = BuildRequest(
                sources=sources,
                requirements=list(v.requirements),
                requirements_file=sources / REQUIREMENTS_FILE
                if (sources / REQUIREMENTS_FILE).is_file()
                else None,
                label=f"{app_name} {number}",
                policy=Policy.of(
                    self.settings,
                    identity,
                    self.settings.builder.network,
                    pids_max=self.settings.sandbox.tool_pids_max,
                ),
                tenant=f"user-{author.id}" if author else "",
                find_links=wheels.find_links(self.settings),
            )
        path = log_path(self.settings, app_name, number)
        with open(path, "a", encoding="utf-8", buffering=1) as out:  # line-buffered: readers see each line

            def say(line: str) -> None:
                out.write(line + "\n")

            say(f"Building {app_name} {number} with the '{builder_name}' builder")
            try:
                builder = get_builder(builder_name, envs_dir(self.settings))
                result = builder.build(request, say)
            except BuildError as exc:
                say(f"BUILD FAILED: {exc.line}")
                self._finish(version_id, error=exc.line)
                return
            except RuntimeError as exc:
                say(f"BUILD FAILED: {exc}")
                self._finish(version_id, error=str(exc))
                return
            say("BUILD SUCCEEDED" + (" (cached environment)" if result.cached else ""))
        self._finish(version_id, env=str(result.env), key=result.key, cached=result.cached)

    def _finish(
        self, version_id: int, *, error: str = "", env: str = "", key: str = "", cached=False
    ) -> None:
        with transaction(self.sessions) as db:
            v = db.get(AppVersion, version_id)
            v.ended_at = utcnow()
            if error:
                # Builders quote pip and the sandbox, which name server paths: the author reads names only.
                error = redaction.for_user(self.settings, v.created_by)(error)
                v.state, v.error = "failed", error
                record(db, v.app, v.created_by, "build failed", error[:500], v.version)
                return
            v.state, v.env_path, v.env_key, v.cached = "built", env, key, cached
            took = (v.ended_at - v.started_at).total_seconds() if v.started_at else 0
            detail = f"built in {took:.1f} s" + (
                " (requirements unchanged: cached environment)" if cached else ""
            )
            record(db, v.app, v.created_by, "built", detail, v.version)
            publish.sync_catalogue(db, v.app)
