"""'New data' triggers on watched folders (pipelines/trigger_watch.py): one run per file, or per batch
window, exactly once: across scans, watchers, a fresh process, and a real `datalabs serve` killed with
SIGKILL and started again while files keep landing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from datalabs.accounts import service as accounts
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.db.models import PipelineRun, TriggerEvent
from datalabs.pipelines.trigger_watch import Watcher
from tests.conftest import PASSWORD
from tests.live import DATALABS, free_port, wait_healthy
from tests.pipelines.conftest import COUNT, register

BATCH = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [cat]
stdout: all.txt
inputs:
  files: {type: 'File[]', inputBinding: {position: 1}}
outputs:
  all: {type: stdout}
"""


@pytest.fixture
def settings(tmp_path, db_url):
    # No manager role (its watcher would race the scans these tests make themselves) and no worker (runs
    # stay queued where the tests count them).
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        server={"roles": ["api", "proxy"]},
        pipelines={"worker": False},
        triggers={"settle": 0.5},
    )


def _incoming(settings, user: str = "ada") -> Path:
    folder = settings.home / "workspaces" / "users" / user / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _trigger(client, pipeline: str, config: dict) -> dict:
    r = client.post(f"/api/v1/pipelines/{pipeline}/triggers", json={"kind": "new_data", "config": config})
    assert r.status_code == 201, r.text
    return r.json()


def _runs(sessions) -> list[tuple[str, dict]]:
    with sessions() as db:
        rows = db.scalars(select(PipelineRun).order_by(PipelineRun.created_at, PipelineRun.id))
        return [(r.id, r.inputs) for r in rows]


def _land(folder: Path, name: str, text: str, age: float = 0.0) -> Path:
    """A file written atomically (temp name, rename), its mtime `age` seconds ago."""
    tmp = folder / f".{name}.part"
    tmp.write_text(text)
    os.replace(tmp, folder / name)
    moment = time.time() - age
    os.utime(folder / name, (moment, moment))
    return folder / name


def _later() -> float:
    return time.time() + 1  # the files written just now have settled by then


def test_one_run_per_file_exactly_once(app, people, settings):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "count", COUNT)
    folder = _incoming(settings)
    trigger = _trigger(ada, "count", {"watch": "me/incoming", "pattern": "*.txt"})
    assert trigger["config"]["input"] == "data"  # the pipeline's one File input
    _land(folder, "old.txt", "1\n", age=3600)  # there before the trigger: never fires
    sessions = app.state.sessions
    watcher = Watcher(settings, sessions)
    assert watcher.scan(now=_later())[0] == []
    _land(folder, "a.txt", "1\n")
    _land(folder, "b.txt", "1\n2\n")
    _land(folder, "skip.csv", "x\n")  # not matching the pattern
    (folder / "sub").mkdir()
    _land(folder / "sub", "c.txt", "3\n")
    queued, _ = watcher.scan(now=_later())
    assert len(queued) == 3
    refs = sorted(inputs["data"]["location"] for _, inputs in _runs(sessions))
    assert refs == ["me/incoming/a.txt", "me/incoming/b.txt", "me/incoming/sub/c.txt"]
    # A trigger from an explorer search fires for paths holding all its words.
    config = {"watch": "me/incoming", "search": {"q": "OBS sub"}}
    r = ada.post("/api/v1/pipelines/count/triggers", json={"kind": "new_data", "config": config})
    assert r.status_code == 201, r.text
    _land(folder / "sub", "obs-1.txt", "1\n")
    _land(folder, "obs-2.txt", "1\n")
    assert len(watcher.scan(now=_later())[0]) == 3  # both for the first trigger, obs-1 for the search
    with sessions() as db:
        by_search = db.scalars(select(TriggerEvent).where(TriggerEvent.trigger_id == r.json()["id"])).all()
    assert [e.detail for e in by_search] == ["new file me/incoming/sub/obs-1.txt"]
    ada.delete(f"/api/v1/triggers/{r.json()['id']}")
    assert watcher.scan(now=_later())[0] == []
    # A file still being written (changed just now) waits until it has settled.
    fresh = _land(folder, "d.txt", "4\n", age=0)
    queued, soon = watcher.scan()
    assert queued == [] and soon is not None and soon <= 0.5
    # Another process (a restart, a new manager) with its own memory: only d.txt, once settled.
    engine, other = open_database(settings.database_url)
    try:
        second = Watcher(settings, other)
        queued, _ = second.scan(now=fresh.stat().st_mtime + 1)
        assert len(queued) == 1
        assert second.scan(now=time.time() + 1)[0] == [] and watcher.scan(now=time.time() + 1)[0] == []
    finally:
        engine.dispose()
    # A file rewritten (new size, new mtime) is new data.
    _land(folder, "a.txt", "1\n2\n3\n", age=-1)
    assert len(watcher.scan(now=time.time() + 2)[0]) == 1
    assert len(_runs(sessions)) == 8
    # Paused: nothing fires; resumed: what landed meanwhile is not fired, what lands after is.
    assert ada.patch(f"/api/v1/triggers/{trigger['id']}", json={"paused": True}).status_code == 200
    _land(folder, "while-paused.txt", "x\n")
    assert watcher.scan(now=_later())[0] == []
    assert ada.patch(f"/api/v1/triggers/{trigger['id']}", json={"paused": False}).status_code == 200
    assert watcher.scan(now=_later())[0] == []
    time.sleep(0.05)
    _land(folder, "after.txt", "x\n", age=-0.0)
    assert len(watcher.scan(now=time.time() + 1)[0]) == 1
    events = ada.get(f"/api/v1/triggers/{trigger['id']}").json()["events"]
    assert events[0]["detail"] == "new file me/incoming/after.txt" and events[0]["run_id"]


def test_batch_mode_one_run_per_window(app, people, settings):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "cat", BATCH)
    folder = _incoming(settings)
    _trigger(ada, "cat", {"watch": "me/incoming", "mode": "batch", "window": 30})
    sessions = app.state.sessions
    watcher = Watcher(settings, sessions)
    t0 = time.time()
    for name in ("x1", "x2", "x3"):
        _land(folder, name, name, age=0)
    queued, wait = watcher.scan(now=t0 + 2)
    assert queued == [] and 27 <= wait <= 29  # the oldest waited 2 s of its 30
    # Another watcher at the window's end, and this one: one batch of the three, once.
    engine, other = open_database(settings.database_url)
    try:
        first = Watcher(settings, other).scan(now=t0 + 31)[0]
    finally:
        engine.dispose()
    assert len(first) == 1 and watcher.scan(now=t0 + 31)[0] == []
    ((run_id, inputs),) = _runs(sessions)
    assert sorted(f["location"] for f in inputs["files"]) == [f"me/incoming/x{i}" for i in (1, 2, 3)]
    # The next files make the next batch, without the first three.
    _land(folder, "y1", "y", age=-35)  # lands at t0 + 35
    assert watcher.scan(now=t0 + 40)[0] == []
    queued, _ = watcher.scan(now=t0 + 66)
    assert len(queued) == 1
    assert [f["location"] for f in _runs(sessions)[-1][1]["files"]] == ["me/incoming/y1"]


def test_watched_folders_are_the_owners_and_links_are_not_followed(app, people, settings, tmp_path):
    people.user("ada")
    people.user("bob", groups=("astro",))
    ada = people.login("ada")
    register(ada, "count", COUNT)
    _incoming(settings)
    bobs = _incoming(settings, "bob")
    _land(bobs, "private.txt", "secret\n")
    refused = [
        "me/../bob/incoming",
        "me/incoming/../../bob",
        "team:astro",  # not her team
        "volume:Nope",
        "/etc",
        "me/missing",
    ]
    for watch in refused:
        r = ada.post(
            "/api/v1/pipelines/count/triggers", json={"kind": "new_data", "config": {"watch": watch}}
        )
        assert r.status_code in (403, 404, 422), (watch, r.text)
    folder = _incoming(settings)
    os.symlink(bobs, folder / "to-bob")  # a link planted in her folder (as a lab could)
    os.symlink(bobs / "private.txt", folder / "private.txt")
    linked = settings.home / "workspaces" / "users" / "ada" / "linked"
    os.symlink(bobs, linked)
    r = ada.post(
        "/api/v1/pipelines/count/triggers", json={"kind": "new_data", "config": {"watch": "me/linked"}}
    )
    assert r.status_code in (403, 404, 422), r.text
    _trigger(ada, "count", {"watch": "me/incoming"})
    time.sleep(0.01)
    _land(folder, "mine.txt", "1\n", age=-0.0)
    queued, _ = Watcher(settings, app.state.sessions).scan(now=time.time() + 1)
    assert len(queued) == 1
    assert [inputs["data"]["location"] for _, inputs in _runs(app.state.sessions)] == ["me/incoming/mine.txt"]


def test_a_killed_platform_restarted_neither_loses_nor_repeats_a_file(tmp_path, db_url):
    """A real `datalabs serve` (the manager: it watches) killed with SIGKILL while files land, started again:
    every file that landed before, during and after the outage queues exactly one run."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "DATALABS_HOME": str(home),
        "DATALABS_DB__URL": db_url,
        "DATALABS_AUTH__SECRET_KEY": "k",
        "DATALABS_PIPELINES__WORKER": "false",  # runs stay queued: counted, not executed
        "DATALABS_SERVER__LEASE_TTL": "3",
        "DATALABS_TRIGGERS__SCAN_INTERVAL": "1",
        "DATALABS_TRIGGERS__SETTLE": "0.3",
    }
    home.mkdir()
    engine, sessions = open_database(db_url)
    with transaction(sessions) as db:
        accounts.create_user(db, "ada", PASSWORD, email="ada@example.org")

    def serve() -> tuple[str, subprocess.Popen]:
        port = free_port()
        log = (home / f"server-{port}.log").open("w")
        proc = subprocess.Popen(
            [DATALABS, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc, home)
        return base, proc

    def wait_runs(n: int, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            made = _runs(sessions)
            if len(made) >= n:
                return made
            time.sleep(0.1)
        raise AssertionError(f"{len(_runs(sessions))} runs, expected {n}")

    base, proc = serve()
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
            c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
            register(c, "count", COUNT)
            assert c.post("/api/v1/workspaces/me/files/incoming", json={"op": "mkdir"}).status_code < 300
            _trigger(c, "count", {"watch": "me/incoming"})
        folder = home / "workspaces" / "users" / "ada" / "incoming"
        time.sleep(0.05)
        for i in range(3):
            _land(folder, f"before-{i}.txt", f"{i}\n", age=-0.0)
        wait_runs(3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for i in range(3):  # while nobody watches
            _land(folder, f"down-{i}.txt", f"{i}\n", age=-0.0)
        base, proc = serve()
        wait_runs(6)
        for i in range(2):
            _land(folder, f"after-{i}.txt", f"{i}\n", age=-0.0)
        made = wait_runs(8)
        time.sleep(2.5)  # a few more scans: nothing more comes
        made = _runs(sessions)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        engine.dispose()
    names = sorted(inputs["data"]["location"].rsplit("/", 1)[1] for _, inputs in made)
    assert names == sorted([f"before-{i}.txt" for i in range(3)] + [f"down-{i}.txt" for i in range(3)]
                           + [f"after-{i}.txt" for i in range(2)])  # fmt: skip
    with sessions() as db:
        assert len(db.scalars(select(TriggerEvent)).all()) == 8
