"""'Run finished' triggers (pipelines/trigger_chain.py): A -> B passes A's outputs, each end fires once, and
a chain (a self-loop A -> A) stops at the depth limit with the reason recorded and shown."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from datalabs.config import Settings
from datalabs.db.engine import open_database
from datalabs.db.models import PipelineRun
from datalabs.pipelines import trigger_chain
from tests.pipelines.conftest import COUNT, HELLO, register, wait_run


@pytest.fixture
def settings(tmp_path, db_url):
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        pipelines={"poll_interval": 0.2, "lease": 6, "scheduler_interval": 3600},
        triggers={"max_depth": 2},
    )


def _all_runs(app) -> list[PipelineRun]:
    with app.state.sessions() as db:
        return list(db.scalars(select(PipelineRun).order_by(PipelineRun.created_at, PipelineRun.id)))


def _wait_for(predicate, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_chain_passes_outputs_from_a_to_b(app, people):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    register(ada, "count", COUNT)
    config = {"after": "hello", "map": {"data": "banner"}}
    r = ada.post("/api/v1/pipelines/count/triggers", json={"kind": "run_finished", "config": config})
    assert r.status_code == 201, r.text
    trigger = r.json()
    a = ada.post("/api/v1/pipelines/hello/runs", json={"inputs": {"text": "chained"}}).json()
    a = wait_run(ada, a["id"])
    assert a["state"] == "succeeded", a
    b_id = _wait_for(lambda: ada.get(f"/api/v1/runs/{a['id']}").json()["triggers_after"])[0]["run_id"]
    b = wait_run(ada, b_id)
    assert b["state"] == "succeeded", b
    assert b["inputs"]["data"]["location"] == a["outputs"]["banner"]["location"]
    assert b["triggered_by"]["after_run"] == a["id"] and b["triggered_by"]["trigger"] == trigger["id"]
    space, path = b["outputs"]["lines"]["location"].split("/", 1)
    lines = ada.get(f"/api/v1/workspaces/{space}/files/{path}")
    assert lines.status_code == 200 and lines.text.split()[0] == "1"  # count read A's one-line banner
    # The end of A fires once, whoever reports it again (another worker, a restart).
    settings = app.state.settings
    engine, fresh = open_database(settings.database_url)
    try:
        assert trigger_chain.after_run(settings, fresh, a["id"]) == []
    finally:
        engine.dispose()
    with app.state.sessions() as db:
        names = [r.pipeline.name for r in db.scalars(select(PipelineRun))]
    assert names.count("count") == 1
    # A failing run does not fire a trigger that waits for success.
    fail = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: 'false'\ninputs: []\noutputs: []\n"
    register(ada, "breaks", fail)
    ada.post("/api/v1/pipelines/count/triggers", json={"kind": "run_finished", "config": {"after": "breaks"}})
    broken = wait_run(ada, ada.post("/api/v1/pipelines/breaks/runs", json={}).json()["id"])
    assert broken["state"] == "failed" and broken["triggers_after"] == []


def test_a_self_loop_stops_at_the_depth_limit(app, people):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    config = {"after": "hello", "on": ["succeeded", "failed"]}
    r = ada.post("/api/v1/pipelines/hello/triggers", json={"kind": "run_finished", "config": config})
    assert r.status_code == 201, r.text
    first = ada.post("/api/v1/pipelines/hello/runs", json={"inputs": {"text": "loop"}}).json()
    # max_depth 2: the first run (started by hand), then two links; the second link's end starts nothing.
    last = _wait_for(lambda: len(_all_runs(app)) == 3 and _all_runs(app)[-1].id)
    last_run = wait_run(ada, last)
    skipped = _wait_for(lambda: ada.get(f"/api/v1/runs/{last}").json()["triggers_after"])
    assert skipped[0]["run_id"] is None and "chain depth limit reached" in skipped[0]["skipped"]
    assert "triggers.max_depth" in skipped[0]["skipped"]
    assert last_run["triggered_by"]["depth"] == 2
    time.sleep(1.0)  # nothing more comes
    made = _all_runs(app)
    assert len(made) == 3
    assert made[0].id == first["id"] and made[0].triggered_by is None
    assert [r.triggered_by["depth"] for r in made[1:]] == [1, 2]
    # The run page says why the chain stopped.
    page = ada.get(f"/runs/{last}")
    assert page.status_code == 200 and "chain depth limit reached" in page.text
    assert "link 2 of its chain" in page.text


def test_run_finished_trigger_config_is_checked(app, people):
    people.user("ada")
    people.user("bob")
    ada, bob = people.login("ada"), people.login("bob")
    register(ada, "hello", HELLO)
    register(bob, "secret-pipe", HELLO)
    bad = [
        {"after": "secret-pipe"},  # not visible to ada
        {"after": "hello", "on": ["cancelled"]},
        {"after": "hello", "map": {"nope": "banner"}},
        {"after": "hello", "map": "banner"},
        {},
        {"after": "hello", "extra": 1},
    ]
    for config in bad:
        r = ada.post("/api/v1/pipelines/hello/triggers", json={"kind": "run_finished", "config": config})
        assert r.status_code in (404, 422), (config, r.text)
        assert r.json()["error"]["message"]
    assert ada.get("/api/v1/pipelines/hello/triggers").json() == []


def test_ends_a_dead_worker_left_unfired_are_caught_up_once(app, people, settings):
    """A worker that recorded a run's end and died before firing its triggers: the watcher's catch-up
    fires them (once); ends still within their worker's grace are left to it."""
    from datetime import timedelta

    from sqlalchemy import update

    from datalabs.accounts import service
    from datalabs.db.engine import transaction
    from datalabs.db.types import utcnow
    from datalabs.pipelines import registry, runs

    app.state.pipeline_worker.stop()  # nothing executes: the ends are written here
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    r = ada.post(
        "/api/v1/pipelines/hello/triggers", json={"kind": "run_finished", "config": {"after": "hello"}}
    )
    assert r.status_code == 201, r.text
    sessions = app.state.sessions
    made = []
    with transaction(sessions) as db:
        principal = runs.principal_of(db, service.get_user(db, "ada"))
        pipeline = registry.get_visible(db, principal, "hello")
        for ago in (120, 10):
            run = runs.submit(db, settings, principal, pipeline, inputs={})
            db.execute(
                update(PipelineRun)
                .where(PipelineRun.id == run.id)
                .values(state="succeeded", ended_at=utcnow() - timedelta(seconds=ago))
            )
            made.append(run.id)
    queued = trigger_chain.catch_up(settings, sessions)
    assert len(queued) == 1
    with sessions() as db:
        assert db.get(PipelineRun, queued[0]).triggered_by["after_run"] == made[0]
    assert trigger_chain.catch_up(settings, sessions) == []
    assert trigger_chain.after_run(settings, sessions, made[0]) == []  # its worker, had it lived: nothing
    assert len(trigger_chain.after_run(settings, sessions, made[1])) == 1  # the recent one, by its worker
    assert trigger_chain.catch_up(settings, sessions, now=utcnow() + timedelta(minutes=5)) == []
