"""'New data' triggers on watched folders: files appearing in a folder of the trigger's owner (a workspace
folder or a data volume they may read) queue one run per file, or one per batch window.

Which process watches: the one holding the "manager" lease (labs/duties.py starts `watch` as one of its
duties), so with replicas one process watches and a new manager takes over; a lone process holds it too.

How files are found: a full scan of every watched folder at start (files that landed while the platform
was down), then every `triggers.scan_interval` seconds; inotify (watchfiles) wakes the scan as soon as
something changes in a watched folder, so a landed file is seen within about `settle` seconds. A scan
walks the folder from directory fds without following links (sandbox/fs.walk), after resolving it as
its owner (pipelines/inputs.place_of: their spaces, no `..`), so no link or path can make it look
elsewhere. Hidden names (".part" files being written, ".git") are skipped. A trigger made from an explorer
search fires for files whose path holds all the search's words (its `q`); its facets, bbox and time need
the file's harvested metadata and are not applied to watched files.

Exactly once: a file's event key is its reference, mtime and size (trigger_events.py); its run is queued
in the transaction that records the key, so a restart or a second watcher never queues it again, and a
rewritten file (new mtime or size) is a new event. A file must stay unchanged `settle` seconds first. In
batch mode the files waiting (settled, not yet in a batch) form one batch when the oldest of them has
waited `window` seconds; each file's key is recorded with the batch, so a file is in one batch only.
Files older than the trigger's creation or last resume never fire it. A trigger with a saved asset search
and no folder fires for the index's new matches (trigger_assets.py), per file or in batches alike.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import hashlib
import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from datalabs.config import Settings
from datalabs.db.models import PipelineTrigger
from datalabs.errors import DatalabsError
from datalabs.pipelines import inputs as run_inputs
from datalabs.pipelines import runs, trigger_assets, trigger_chain, trigger_events
from datalabs.sandbox import fs
from datalabs.workspaces import paths

log = logging.getLogger(__name__)

# This process's running watchers (the manager's one, or a test's): what `wake` and `index_changed` reach.
_running: set[Watcher] = set()


def wake() -> None:
    """A trigger was created or resumed in this process: scan now, so its folder is watched (inotify) and
    its search looked at from now, not from the next scan (`triggers.scan_interval`). Another replica's
    change reaches the manager's watcher at its next scan."""
    for watcher in list(_running):
        watcher._wake.set()


def on_index_written(then):
    """The indexer's `written` signal (app.py): `then` (the index's readers look again), then
    `index_changed`."""

    def written() -> None:
        then()
        index_changed()

    return written


def index_changed() -> None:
    """The asset index was written (a harvest, an ingest: the indexer's `written` signal, wired in app.py):
    every watcher of this process looks at its saved searches now."""
    for watcher in list(_running):
        watcher.index_changed()


@dataclass(frozen=True)
class Found:
    key: str
    ref: str
    mtime: float


async def watch(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """The manager's duty: watch until cancelled (the lease lost, the process stopping)."""
    watcher = Watcher(settings, sessions)
    watcher.start()
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.to_thread(watcher.stop)


class Watcher:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], on_queued=None) -> None:
        self.settings, self.sessions = settings, sessions
        self.cfg = settings.triggers
        self.on_queued = on_queued  # called with the ids of the runs a scan queued
        # (trigger, its creation) -> event keys recorded: a cache of the DB's (SQLite may reuse a deleted id)
        self._seen: dict[tuple[int, float], set[str]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._dirs: tuple[str, ...] = ()
        self._rewatch = threading.Event()
        self._assets = None  # the asset index, opened when a trigger has a saved search
        self._next_catch_up = 0.0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._loop, "trigger-scan"), (self._inotify, "trigger-inotify")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        _running.add(self)

    def stop(self, timeout: float = 5.0) -> None:
        _running.discard(self)
        self._stop.set()
        self._wake.set()
        self._rewatch.set()
        for t in self._threads:
            t.join(timeout)

    def index_changed(self) -> None:
        """A harvest or an ingest wrote to the asset index: look at it now, not at the next refresh."""
        if self._assets is not None:
            self._assets.changed()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.cfg.scan_interval
            try:
                if time.monotonic() >= self._next_catch_up:  # ends whose worker died before firing them
                    self._next_catch_up = time.monotonic() + 60
                    trigger_chain.catch_up(self.settings, self.sessions)
                queued, soon = self.scan()
                if queued and self.on_queued is not None:
                    self.on_queued(queued)
                if soon is not None:
                    wait = min(wait, max(0.05, soon))
            except Exception:
                log.exception("triggers: scanning watched folders failed")
            self._wake.wait(wait)
            self._wake.clear()

    def _inotify(self) -> None:
        """Wake the scan when a watched folder changes; re-armed when the set of folders changes."""
        if not self.cfg.inotify:
            return
        try:
            import watchfiles
        except ImportError:  # the periodic scan alone, then
            return
        while not self._stop.is_set():
            dirs = self._dirs
            if not dirs:
                self._rewatch.wait(1.0)
                self._rewatch.clear()
                continue
            try:
                for _ in watchfiles.watch(
                    *dirs, stop_event=self._rewatch, debounce=50, step=20, raise_interrupt=False,
                    ignore_permission_denied=True,
                ):  # fmt: skip
                    self._wake.set()
            except Exception as exc:  # a folder went away: the scan notices; watch again shortly
                log.debug("triggers: inotify stopped: %s", exc)
                self._stop.wait(1.0)
            self._rewatch.clear()

    # ---- one scan --------------------------------------------------------------------------------------

    def scan(self, now: float | None = None) -> tuple[list[str], float | None]:
        """Fire what is due; returns (runs queued, seconds until something waiting may be due)."""
        now = time.time() if now is None else now
        self._lists: dict[tuple[str, tuple[str, ...]], list] = {}  # this scan's folder listings
        self._owners: dict[int, object] = {}  # and its owners as principals
        with self.sessions() as db:
            active = list(
                db.scalars(
                    select(PipelineTrigger).where(
                        PipelineTrigger.kind == "new_data", PipelineTrigger.paused.is_(False)
                    )
                )
            )
            plans = []
            dirs = []
            for trigger in active:
                cached = (trigger.id, trigger.created_at.timestamp())
                if not trigger.config.get("watch"):
                    if trigger.config.get("search"):  # a saved asset search alone: the index's new matches
                        plans.append((cached, dict(trigger.config), self._searched(db, trigger), None))
                    continue
                try:
                    host, found, soon = self._look(db, trigger, now)
                except DatalabsError as exc:
                    log.info("triggers: trigger %s cannot watch %s: %s", trigger.id,
                             trigger.config.get("watch"), exc.message)  # fmt: skip
                    continue
                dirs.append(host)
                plans.append((cached, dict(trigger.config), found, soon))
        self._set_dirs(tuple(sorted(set(dirs))))
        queued: list[str] = []
        due: list[float] = []
        for cached, config, found, soon in plans:
            if soon is not None:
                due.append(soon)
            if config.get("mode") == "batch":
                wait = self._batch(cached, config, found, now, queued)
                if wait is not None:
                    due.append(wait)
            else:
                for f in found:
                    self._fire(cached, f.key, f"new file {f.ref}", {config["input"]: f.ref}, (), queued)
        return queued, (min(due) if due else None)

    def _set_dirs(self, dirs: tuple[str, ...]) -> None:
        if dirs != self._dirs:
            self._dirs = dirs
            self._rewatch.set()

    def _look(
        self, db: Session, trigger: PipelineTrigger, now: float
    ) -> tuple[str, list[Found], float | None]:
        """(host folder, settled files not yet recorded, seconds until an unsettled one settles)."""
        watch = trigger.config["watch"]
        if trigger.owner_id not in self._owners:
            self._owners[trigger.owner_id] = runs.principal_of(db, trigger.owner)
        principal = self._owners[trigger.owner_id]
        space, _, rest = watch.partition("/")
        place = run_inputs.place_of(db, self.settings, principal, f"{space}/{rest or '_'}")
        parts = paths.parts_of(rest) if rest else ()
        cached = (trigger.id, trigger.created_at.timestamp())
        if cached not in self._seen:
            self._seen[cached] = trigger_events.seen(db, trigger.id)
        seen = self._seen[cached]
        armed = trigger.armed_at.timestamp()
        search = trigger.config.get("search") or {}
        words = str(search.get("q", "")).lower().split()  # the saved search's words, as in the explorer
        match = _pattern(trigger.config.get("pattern") or "*")
        found: list[Found] = []
        soon: float | None = None
        for rel, name, mtime, mtime_ns, size in self._listing(place.root, parts):
            if mtime < armed or not match(name):
                continue
            ref = f"{watch}/{rel}"
            if words and not all(w in ref.lower() for w in words):
                continue
            key = trigger_events.key_of(f"file:{ref}@{mtime_ns}:{size}")
            if key in seen:
                continue
            age = now - mtime
            if age < self.cfg.settle:
                left = self.cfg.settle - age
                soon = left if soon is None else min(soon, left)
                continue
            found.append(Found(key, ref, mtime))
        return os.path.join(place.root, *parts), found, soon

    def _searched(self, db: Session, trigger: PipelineTrigger) -> list[Found]:
        """The assets of the index matching the trigger's saved search, not yet recorded (as its owner)."""
        from datalabs.assets.service import Assets, visible_collections

        if self._assets is None:
            self._assets = Assets(self.settings)  # a reader of its own; it sees harvests' new segments
        if trigger.owner_id not in self._owners:
            self._owners[trigger.owner_id] = runs.principal_of(db, trigger.owner)
        principal = self._owners[trigger.owner_id]
        cached = (trigger.id, trigger.created_at.timestamp())
        if cached not in self._seen:
            self._seen[cached] = trigger_events.seen(db, trigger.id)
        seen = self._seen[cached]
        try:
            found = trigger_assets.matches(
                self._assets, trigger.config["search"], visible_collections(db, principal),
                trigger.armed_at.timestamp(), self.cfg.max_files,
            )  # fmt: skip
            return [Found(key, ref, mtime) for key, ref, mtime in found if key not in seen]
        except DatalabsError as exc:
            log.info("triggers: trigger %s cannot search: %s", trigger.id, exc.message)
            return []

    def _listing(self, root, parts: tuple[str, ...]) -> list[tuple[str, str, float, int, int]]:
        """(relative path, name, mtime, mtime_ns, size) of the regular files below a folder, walked once per
        scan whatever the number of triggers watching it (at most `triggers.max_files`, in name order)."""
        where = (str(root), parts)
        if where in self._lists:
            return self._lists[where]
        files: list[tuple[str, str, float, int, int]] = []
        with paths.in_dir(root, parts) as top:
            for folder, dirs, others, dfd in fs.walk(top):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(others):
                    if name.startswith("."):
                        continue
                    if len(files) >= self.cfg.max_files:
                        break
                    try:
                        st = os.lstat(name, dir_fd=dfd)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        rel = name if folder == "." else f"{folder}/{name}"
                        files.append((rel, name, st.st_mtime, st.st_mtime_ns, st.st_size))
        self._lists[where] = files
        return files

    def _batch(self, cached, config: dict, found: list[Found], now: float, queued: list) -> float | None:
        """One run for the files waiting, once the oldest has waited the window; else seconds to wait."""
        if not found:
            return None
        oldest = min(f.mtime for f in found)
        left = oldest + config.get("window", 60) - now
        if left > 0:
            return left
        keys = sorted(f.key for f in found)
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]
        refs = [f.ref for f in sorted(found, key=lambda f: (f.mtime, f.ref))]
        detail = f"{len(refs)} new file(s) from {refs[0]}"
        fired = self._fire(cached, f"batch:{digest}", detail, {config["input"]: refs}, tuple(keys), queued)
        if not fired:  # some file went into another watcher's batch meanwhile: re-read, regroup
            self._seen.pop(cached, None)
        return None

    def _fire(self, cached, key, detail, inputs, also, queued) -> bool:
        fired = trigger_events.fire(
            self.sessions, self.settings, cached[0], key, detail=detail, inputs=inputs, also=also
        )
        seen = self._seen.setdefault(cached, set())
        seen.update((key, *also))
        if fired is not None and fired.run_id:
            queued.append(fired.run_id)
        return fired is not None


@functools.lru_cache(maxsize=1024)
def _pattern(glob: str):
    return re.compile(fnmatch.translate(glob)).match
