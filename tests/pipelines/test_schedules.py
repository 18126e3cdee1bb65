"""Schedules fire exactly once per due time, across restarts and concurrent schedulers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from datalabs.db.engine import open_database, transaction
from datalabs.db.models import PipelineRun, ScheduleFire
from datalabs.pipelines import registry, runs, schedules
from tests.pipelines.conftest import HELLO, register

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _schedule(app, people, cron="*/5 * * * *") -> int:
    from datalabs.accounts import service

    app.state.pipeline_worker.stop()
    people.user("ada")
    register(people.login("ada"), "hello", HELLO)
    with transaction(app.state.sessions) as db:
        principal = runs.principal_of(db, service.get_user(db, "ada"))
        pipeline = registry.get_visible(db, principal, "hello")
        return schedules.create(
            db, app.state.settings, principal, pipeline, cron=cron, inputs={"text": "tick"}, now=T0
        ).id


def _runs(sessions) -> list[PipelineRun]:
    with sessions() as db:
        return list(db.scalars(select(PipelineRun).order_by(PipelineRun.created_at)))


def test_each_due_time_fires_once_across_a_restart(app, people, settings):
    sid = _schedule(app, people)
    sessions = app.state.sessions
    assert schedules.tick(sessions, settings, now=T0 + timedelta(minutes=2)) == []  # not due yet
    first = schedules.tick(sessions, settings, now=T0 + timedelta(minutes=5, seconds=1))
    assert len(first) == 1
    assert schedules.tick(sessions, settings, now=T0 + timedelta(minutes=5, seconds=2)) == []
    # "Restart": a new process would open the database afresh and tick at the same moment.
    engine, fresh = open_database(settings.database_url)
    try:
        assert schedules.tick(fresh, settings, now=T0 + timedelta(minutes=5, seconds=3)) == []
        # Down through 12:10 ... 12:30: the latest missed time fires once, the rest are skipped.
        late = schedules.tick(fresh, settings, now=T0 + timedelta(minutes=31))
        assert len(late) == 1
    finally:
        engine.dispose()
    with sessions() as db:
        fires = db.scalars(select(ScheduleFire).where(ScheduleFire.schedule_id == sid)).all()
    fired = sorted((f.due_at.astimezone(UTC).strftime("%H:%M"), f.skipped) for f in fires)
    assert fired == [
        ("12:05", False),
        ("12:10", True),
        ("12:15", True),
        ("12:20", True),
        ("12:25", True),
        ("12:30", False),
    ]
    made = _runs(sessions)
    assert [r.id for r in made] == first + late
    assert all(r.schedule_id == sid and r.inputs == {"text": "tick"} for r in made)


def test_concurrent_schedulers_fire_once(app, people, settings):
    _schedule(app, people)
    moment = T0 + timedelta(minutes=5, seconds=1)
    engines = [open_database(settings.database_url) for _ in range(4)]
    results: list[list[str]] = []
    barrier = threading.Barrier(len(engines))

    def tick(sessions) -> None:
        barrier.wait()
        results.append(schedules.tick(sessions, settings, now=moment))

    threads = [threading.Thread(target=tick, args=(s,)) for _, s in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine, _ in engines:
        engine.dispose()
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert len(_runs(app.state.sessions)) == 1


def test_schedule_api_states_the_missed_fire_policy(people, app):
    people.user("ada")
    people.user("bob")
    ada = people.login("ada")
    register(ada, "hello", HELLO, allowed_users=["bob"])
    r = ada.post("/api/v1/pipelines/hello/schedules", json={"cron": "0 3 * * *", "inputs": {"text": "night"}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert "most recent missed time fires once" in body["missed_policy"]
    assert body["next_due"].endswith(("03:00:00Z", "03:00:00+00:00"))
    bob = people.login("bob")
    assert bob.get("/api/v1/pipelines/hello/schedules").json() == []
    assert bob.delete(f"/api/v1/schedules/{body['id']}").status_code == 404
    assert ada.delete(f"/api/v1/schedules/{body['id']}").status_code == 204


def test_a_schedule_keeps_its_cluster_for_every_run_and_refuses_one_not_yours(app, people, settings):
    from datalabs.clusters.settings import ClusterSettings

    settings.clusters = [
        ClusterSettings(name="local"),
        ClusterSettings(name="astro", allowed_groups=["astro"]),
    ]
    app.state.pipeline_worker.stop()
    people.user("ada", groups=("astro",))
    people.user("bob")
    ada, bob = people.login("ada"), people.login("bob")
    register(ada, "hello", HELLO, allowed_users=["bob"])
    body = {"cron": "*/5 * * * *", "inputs": {"text": "tick"}}
    r = ada.post("/api/v1/pipelines/hello/schedules", json={**body, "cluster": "astro"})
    assert r.status_code == 201 and r.json()["cluster"] == "astro"
    refused = bob.post("/api/v1/pipelines/hello/schedules", json={**body, "cluster": "astro"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unknown_cluster"
    assert "(yours: local)" in refused.json()["error"]["message"]
    assert bob.get("/api/v1/pipelines/hello/schedules").json() == []
    later = datetime.now(UTC) + timedelta(minutes=6)
    (run_id,) = schedules.tick(app.state.sessions, settings, now=later)
    with app.state.sessions() as db:
        assert db.get(PipelineRun, run_id).cluster == "astro"
