"""The running watcher is told, not left to its next scan (issue 18's loose ends): a trigger created or
resumed through the API or the pages makes it scan now (so its folder is watched by inotify at once), and
the indexer's `written` signal (a harvest, wired in app.py) makes it look at saved searches now. The scan
interval here is an hour: without the signal nothing would fire within these tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import PipelineRun, Volume
from datalabs.pipelines import trigger_watch
from datalabs.pipelines.trigger_watch import Watcher
from tests.pipelines.conftest import COUNT, register
from tests.pipelines.test_trigger_pages import _post


@pytest.fixture
def settings(tmp_path, db_url):
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        server={"roles": ["api", "proxy"]},  # no manager: the test's own watcher is the only one
        pipelines={"worker": False},
        triggers={"settle": 0.2, "scan_interval": 3600},
    )


@pytest.fixture
def watcher(app, settings):
    w = Watcher(settings, app.state.sessions)
    w.start()
    yield w
    w.stop()
    assert w not in trigger_watch._running


def _locations(sessions) -> list[str]:
    with sessions() as db:
        rows = db.scalars(select(PipelineRun).order_by(PipelineRun.created_at, PipelineRun.id))
        return [r.inputs["data"]["location"] for r in rows]


def _wait_for(sessions, n: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(found := _locations(sessions)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} run(s), expected {n}: {found}")
        time.sleep(0.05)
    return found


def _land(folder: Path, name: str) -> None:
    tmp = folder / f".{name}.part"
    tmp.write_text("1\n")
    os.replace(tmp, folder / name)


def test_a_created_or_resumed_trigger_is_watched_at_once(app, people, settings, watcher):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "count", COUNT)
    folder = settings.home / "workspaces" / "users" / "ada" / "incoming"
    folder.mkdir(parents=True)
    sessions = app.state.sessions
    made = ada.post("/api/v1/pipelines/count/triggers",
                    json={"kind": "new_data", "config": {"watch": "me/incoming"}})  # fmt: skip
    assert made.status_code == 201, made.text
    trigger = made.json()["id"]
    deadline = time.monotonic() + 10
    while not watcher._dirs and time.monotonic() < deadline:  # the creation's scan arms inotify
        time.sleep(0.02)
    assert watcher._dirs == (str(folder),)
    _land(folder, "a.txt")
    assert _wait_for(sessions, 1) == ["me/incoming/a.txt"]
    # Paused: a landing file wakes a scan that finds no active trigger, and the folder is no longer watched.
    assert ada.patch(f"/api/v1/triggers/{trigger}", json={"paused": True}).status_code == 200
    _land(folder, "while-paused.txt")
    deadline = time.monotonic() + 10
    while watcher._dirs and time.monotonic() < deadline:
        time.sleep(0.02)
    assert watcher._dirs == ()
    # Resumed through the page: watched again at once; the next file fires (not the one landed meanwhile).
    page = _post(ada, "/pipelines/count", f"/pipelines/count/triggers/{trigger}/resume", {})
    assert page.status_code == 303, page.text
    deadline = time.monotonic() + 10
    while not watcher._dirs and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # a file newer than the resume
    _land(folder, "b.txt")
    assert _wait_for(sessions, 2) == ["me/incoming/a.txt", "me/incoming/b.txt"]


def test_a_harvest_wakes_saved_searches(app, people, settings, watcher, tmp_path):
    people.user("root", role="admin")
    people.user("ada")
    ada, admin = people.login("ada"), people.login("root")
    volume = tmp_path / "volume"
    volume.mkdir()
    with transaction(app.state.sessions) as db:
        db.add(Volume(name="Demo", host_path=str(volume)))
    register(ada, "count", COUNT)
    search = {"collection": "Demo", "q": "obs"}
    body = {"kind": "new_data", "config": {"search": search}}
    made = ada.post("/api/v1/pipelines/count/triggers", json=body)
    assert made.status_code == 201, made.text
    time.sleep(0.05)  # files newer than the trigger
    (volume / "obs-1.txt").write_text("1\n")
    (volume / "notes.txt").write_text("x\n")
    indexer = app.state.indexer  # as when this process holds the manager lease (app.py), watcher aside
    indexer.here = True
    indexer.start()
    try:
        assert admin.post("/api/v1/volumes/Demo/harvest").status_code == 202
        # The indexer's `written` signal wakes the watcher (its scan interval is an hour).
        assert _wait_for(app.state.sessions, 1) == ["volume:Demo/obs-1.txt"]
    finally:
        indexer.stop()
