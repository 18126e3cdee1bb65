"""Indexing data volumes from the running platform: "Index now" (admin page and API) and a schedule.

A harvest reads only new or changed files (assets/harvest.py), so a scheduled one is how files added to
a volume appear in the explorer without a full re-read. Harvests run one at a time, in a background
thread, into the server's own index (readers see each batch as it lands); the others wait in order.
Each volume's last harvest (state, progress, counts, the files that could not be read and why) is kept
in DATALABS_HOME/assets/harvest/<volume>.status.json, written whole or not at all, so the admin page
shows it after a restart too, and a harvest cut short by one reads as such.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from datalabs.assets.base import AssetIndex
from datalabs.assets.harvest import harvest_volume
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Volume
from datalabs.errors import Conflict, Unavailable

log = logging.getLogger(__name__)

MAX_ERRORS = 200  # files listed with their reason; the count says how many there were in all
ACTIVE = ("queued", "running")


@dataclass
class Status:
    """One volume's last (or current) harvest."""

    volume: str
    state: str = "never"  # never | queued | running | done | failed | interrupted
    requested_by: str = ""  # a user name, or "schedule"
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    done: int = 0  # files read so far (of `todo`)
    todo: int | None = None  # new or changed files to read, known once the volume was walked
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    error_count: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), the first MAX_ERRORS
    message: str = ""  # why a harvest failed

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def as_dict(self) -> dict:
        return {**asdict(self), "active": self.active}


def status_path(state_dir: Path, volume: str) -> Path:
    return state_dir / f"{volume}.status.json"


def read_status(state_dir: Path, volume: str) -> Status:
    """The volume's last recorded harvest; one recorded as active was cut short (the process ended)."""
    try:
        data = json.loads(status_path(state_dir, volume).read_text())
        status = Status(**{k: v for k, v in data.items() if k in Status.__dataclass_fields__})
        status.errors = [tuple(e) for e in status.errors]
    except (OSError, ValueError, TypeError):
        return Status(volume)
    if status.active:
        status.state, status.message = "interrupted", "the platform stopped before this harvest finished"
    return status


def write_status(state_dir: Path, status: Status) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = status_path(state_dir, status.volume)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(asdict(status)))
    os.replace(tmp, path)


def harvest(
    index: AssetIndex,
    root: Path,
    status: Status,
    state_dir: Path,
    save_every: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> Status:
    """Harvest `root` into `index` as collection `status.volume`, keeping `status` (and its file, at most
    every `save_every` seconds) up to date; the finished status. Raises what the harvest raised, with the
    status recorded as failed. Every harvest goes through here (the platform, `datalabs assets harvest`,
    the demo seed), so the admin page shows each one."""
    status.state, status.started_at, status.message = "running", time.time(), ""
    status.done, status.todo = 0, None
    write_status(state_dir, status)
    saved = time.monotonic()

    def advance(done: int, todo: int) -> None:
        nonlocal saved
        if progress is not None:
            progress(done, todo)
        status.done, status.todo = done, todo
        if time.monotonic() - saved >= save_every:
            saved = time.monotonic()
            write_status(state_dir, status)

    try:
        if not root.is_dir():
            raise FileNotFoundError(f"the volume's folder {root} does not exist")
        report = harvest_volume(index, root, status.volume, state_dir, workers, progress=advance)
    except Exception as exc:
        status.state, status.finished_at = "failed", time.time()
        status.message = f"{type(exc).__name__}: {exc}"
        write_status(state_dir, status)
        raise
    status.state, status.finished_at = "done", time.time()
    status.todo = status.todo if status.todo is not None else 0
    for name in ("seen", "added", "updated", "unchanged", "removed"):
        setattr(status, name, getattr(report, name))
    status.error_count, status.errors = len(report.errors), report.errors[:MAX_ERRORS]
    write_status(state_dir, status)
    return status


class VolumeIndexer:
    """The platform's harvests: requested from the admin page or the API, or due by the schedule
    (`assets.harvest_every_minutes`); one at a time, in request order."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        writer: Callable[[], AssetIndex],
        written: Callable[[], None] = lambda: None,
    ) -> None:
        self.state_dir = settings.home / "assets" / "harvest"
        self.every = settings.assets.harvest_every_minutes * 60
        self._sessions = sessions
        # A writer of its own for each harvest, as the `datalabs assets` commands have: the index's
        # readers are only safe while nothing ingests into their instance. `written` tells them to look.
        self._writer, self._written = writer, written
        self._current: dict[str, Status] = {}  # queued or running, by volume
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, Path] | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Whether this process harvests: with replicas, only the one holding the manager lease does (the
        # index has one writer); the app says so as the lease comes and goes.
        self.here = True

    def start(self) -> None:
        self._stop.clear()  # started again after a stop: when this replica takes the manager lease back
        self._threads = [threading.Thread(target=self._work, name="volume-indexer", daemon=True)]
        if self.every > 0:
            self._threads.append(threading.Thread(target=self._schedule, name="volume-schedule", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def status(self, volume: str) -> Status:
        with self._lock:
            current = self._current.get(volume)
        return current if current is not None else read_status(self.state_dir, volume)

    def request(self, volume: Volume, by: str) -> Status:
        """Queue a harvest of `volume`; Conflict if one is already queued or running, Unavailable if this
        process does not harvest (another replica does: the index has one writer)."""
        if not self.here:
            raise Unavailable(
                "this server does not index data volumes: the replica that manages labs does; ask again in "
                "a moment (or run `datalabs assets harvest` on the platform's host)",
                code="not_the_indexer",
            )
        with self._lock:
            if volume.name in self._current:
                current = self._current[volume.name]
                raise Conflict(f"data volume '{volume.name}' is already being indexed ({current.state})")
            status = Status(volume.name, state="queued", requested_by=by, queued_at=time.time())
            self._current[volume.name] = status
        write_status(self.state_dir, status)
        self._queue.put((volume.name, Path(volume.host_path)))
        return status

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            name, root = item
            with self._lock:
                status = self._current[name]
            try:
                harvest(self._writer(), root, status, self.state_dir)
                log.info("indexed data volume %s: %d files, %d new", name, status.seen, status.added)
            except Exception:
                log.exception("indexing data volume %s failed", name)
            finally:
                self._written()
                with self._lock:
                    self._current.pop(name, None)

    def _schedule(self) -> None:
        while not self._stop.wait(min(60.0, self.every)):
            with contextlib.suppress(Exception):
                self.queue_due()

    def queue_due(self, now: float | None = None) -> list[str]:
        """Queue a harvest of each volume whose last one finished (or was asked for) `every` seconds ago
        or more, or never ran; the names queued."""
        if not self.here:
            return []
        now = now or time.time()
        with transaction(self._sessions) as db:
            volumes = list(db.scalars(select(Volume)))
            queued = []
            for volume in volumes:
                last = self.status(volume.name)
                when = last.finished_at or last.queued_at or 0.0
                if not last.active and now - when >= self.every:
                    with contextlib.suppress(Conflict):
                        self.request(volume, "schedule")
                        queued.append(volume.name)
        return queued
