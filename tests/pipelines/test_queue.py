"""The durable queue: concurrent claims never hand a run out twice; 200 runs through 2 workers finish
exactly once each; a worker killed with -9 mid-run loses nothing (its run is re-queued by lease expiry)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from datalabs.db.engine import transaction
from datalabs.db.models import PipelineRun
from datalabs.pipelines import queue, registry, runs
from datalabs.pipelines.documents import load_text
from datalabs.pipelines.worker import Worker
from tests.pipelines.conftest import HELLO, SLEEP


def _queue_runs(app, owner: str, name: str, cwl: str, count: int, inputs: dict) -> list[str]:
    from datalabs.accounts import service

    settings = app.state.settings
    with transaction(app.state.sessions) as db:
        principal = runs.principal_of(db, service.get_user(db, owner))
        pipeline = registry.create(
            db,
            principal,
            name=name,
            details=registry.Details(),
            system=False,
            version="1",
            notes="",
            document=load_text(f"{name}.cwl", cwl),
            source=cwl,
        )
        return [runs.submit(db, settings, principal, pipeline, inputs=inputs).id for _ in range(count)]


@pytest.fixture
def idle_app(app, client):
    app.state.pipeline_worker.stop()  # the tests drive their own workers
    return app


def test_concurrent_claims_never_hand_out_a_run_twice(idle_app, people):
    people.user("ada")
    ids = _queue_runs(idle_app, "ada", "hello", HELLO, 120, {})
    claimed: list[str] = []
    lock = threading.Lock()

    def grab(worker: str) -> None:
        while (c := queue.claim(idle_app.state.sessions, worker, 60)) is not None:
            with lock:
                claimed.append(c.run_id)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


@pytest.mark.slow
def test_200_runs_through_2_workers_each_exactly_once(idle_app, people, settings):
    people.user("ada")
    ids = _queue_runs(idle_app, "ada", "hello", HELLO, 200, {"text": "x"})
    workers = [Worker(settings, idle_app.state.sessions, name=f"w{i}", slots=2) for i in range(2)]
    for w in workers:
        w.start(maintenance=False)
    deadline = time.monotonic() + 240
    sessions = idle_app.state.sessions
    try:
        while time.monotonic() < deadline:
            with sessions() as db:
                left = db.scalar(select(func.count()).where(PipelineRun.state.not_in(queue.FINAL)))
            if not left:
                break
            time.sleep(0.2)
    finally:
        for w in workers:
            w.stop()
    with sessions() as db:
        rows = db.scalars(select(PipelineRun)).all()
    assert sorted(r.id for r in rows) == sorted(ids)
    assert {r.state for r in rows} == {"succeeded"}
    assert {r.attempts for r in rows} == {1}
    assert {r.worker for r in rows} == {"w0", "w1"}  # both did work
    home = settings.home
    for r in rows:
        log = runs.log_path(settings, r.id).read_text()
        assert log.count("=== attempt") == 1, log
        assert (
            home / "workspaces/users/ada/pipelines/hello" / r.id / "banner.txt"
        ).read_text() == "== x ==\n"


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_run_requeues_the_run(idle_app, people, settings, tmp_path):
    people.user("ada")
    [run_id] = _queue_runs(idle_app, "ada", "sleepy", SLEEP, 1, {"seconds": 3})
    env = {
        **os.environ,
        "DATALABS_HOME": str(settings.home),
        "DATALABS_DB__URL": settings.database_url,
        "DATALABS_PIPELINES__LEASE": "3",
        "DATALABS_PIPELINES__POLL_INTERVAL": "0.2",
    }
    datalabs = str(Path(sys.executable).parent / "datalabs")
    log = runs.log_path(settings, run_id)
    first = subprocess.Popen([datalabs, "worker", "--name", "doomed"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and "started" in log.read_text()):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    with idle_app.state.sessions() as db:
        assert db.get(PipelineRun, run_id).state == "running"  # held by a dead worker, until its lease ends
    second = subprocess.Popen([datalabs, "worker", "--name", "heir"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with idle_app.state.sessions() as db:
                run = db.get(PipelineRun, run_id)
            if run.state in queue.FINAL or time.monotonic() > deadline:
                break
            assert run.worker in ("doomed", "heir", "")
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert run.state == "succeeded", run.reason
    assert run.attempts == 2 and run.worker == "heir"
    text = log.read_text()
    assert "attempt 1 on doomed" in text and "attempt 2 on heir" in text
    out = settings.home / "workspaces/users/ada/pipelines/sleepy" / run_id
    assert (out / "done.txt").read_text() == "slept\n"
    assert not any(p.name.startswith(".datalabs") for p in out.parent.iterdir())


def test_a_run_of_a_dead_worker_fails_once_its_attempts_are_used(idle_app, people):
    from datetime import timedelta

    from datalabs.db.types import utcnow

    people.user("ada")
    [run_id] = _queue_runs(idle_app, "ada", "hello", HELLO, 1, {})
    sessions = idle_app.state.sessions
    for attempt in (1, 2):
        claim = queue.claim(sessions, f"dead{attempt}", lease=1)
        assert claim.attempt == attempt
        reaped = queue.reap(sessions, now=utcnow() + timedelta(seconds=5))
        assert reaped == [(run_id, "queued" if attempt == 1 else "failed")]
        assert queue.finish(sessions, claim, "succeeded") is False  # the dead worker can no longer finish it
    with sessions() as db:
        run = db.get(PipelineRun, run_id)
        assert run.state == "failed" and "no attempts left" in run.reason
