"""Usage records: each lab session is kept when it ends (so a restart or a destroy loses none), runs and
running labs count from their rows, and only time within the period is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import get_user
from datalabs.config import Settings
from datalabs.db.models import Lab, Pipeline, PipelineRun, PipelineVersion, UsageRecord
from datalabs.db.types import utcnow
from datalabs.usage import records, report
from tests.api.test_labs import FAKE, wait_state
from tests.catalogue.test_loader import write


@pytest.fixture
def settings(tmp_path, db_url):
    root = tmp_path / "defs"
    write(root, "fake", FAKE.format(command="fake-lab"))
    write(root, "crashy", FAKE.format(command="fake-crash"))
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [root], "builtin": False},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
        pipelines={"worker": False},
    )


def _records(app) -> list[UsageRecord]:
    with app.state.sessions() as db:
        return list(db.query(UsageRecord).order_by(UsageRecord.id))


def test_every_session_is_recorded_as_it_ends_and_outlives_restart_and_destroy(people, app):
    people.user("ada")
    c = people.login("ada")
    lab = c.post("/api/v1/labs", json={"datalab": "fake", "resources": {"cpu": 2, "memory": "2G"}}).json()
    wait_state(c, lab["id"])
    assert c.post(f"/api/v1/labs/{lab['id']}/stop", json={}).json()["state"] == "stopped"
    [first] = _records(app)
    assert (first.lab_id, first.datalab, first.cluster, first.cpu, first.memory, first.gpu) == (
        lab["id"], "fake", "local", 2.0, 2 * 10**9, 0,
    )  # fmt: skip
    assert first.accounted and first.job_id == "" and first.state == "stopped"
    assert first.ended_at >= first.started_at

    assert c.post(f"/api/v1/labs/{lab['id']}/restart", json={}).status_code == 202
    wait_state(c, lab["id"])
    c.post(f"/api/v1/labs/{lab['id']}/stop", json={})
    assert c.delete(f"/api/v1/labs/{lab['id']}").status_code == 204

    both = _records(app)
    assert len(both) == 2 and both[1].started_at >= both[0].ended_at
    sessions = c.get("/api/v1/usage").json()["sessions"]
    assert [s["id"] for s in sessions] == [lab["id"], lab["id"]]
    assert all(s["source"] == "platform" and s["end"] for s in sessions)


def test_a_lab_that_never_started_used_nothing(people, app):
    people.user("ada")
    c = people.login("ada")
    lab = c.post("/api/v1/labs", json={"datalab": "crashy"}).json()
    assert wait_state(c, lab["id"])["state"] == "failed"
    assert _records(app) == []
    assert c.get("/api/v1/usage").json()["sessions"] == []


def test_a_running_lab_counts_until_now(people, app):
    people.user("ada")
    c = people.login("ada")
    lab = c.post("/api/v1/labs", json={"datalab": "fake"}).json()
    wait_state(c, lab["id"])
    [session] = c.get("/api/v1/usage").json()["sessions"]
    assert session["id"] == lab["id"] and session["end"] is None and session["state"] == "running"
    assert session["hours"] >= 0


def _principal(db, name: str) -> Principal:
    return Principal(user=get_user(db, name), groups=frozenset())


def test_only_the_time_within_the_period_counts(people, app):
    people.user("ada")
    with app.state.sessions() as db:
        ada = get_user(db, "ada").id
        start, end = datetime(2026, 10, 31, 22, tzinfo=UTC), datetime(2026, 11, 1, 1, tzinfo=UTC)
        db.add(
            UsageRecord(
                lab_id="l1", owner_id=ada, datalab="fake", cluster="hpc", backend="slurm", cpu=4,
                memory=10**9,
                gpu=1, opened_at=start, started_at=start, ended_at=end, state="TIMEOUT", job_id="7",
                accounted=True,
            )
        )  # fmt: skip
        db.commit()
        principal = _principal(db, "ada")
        october = report.for_principal(db, app.state.settings, principal, report.month_period("2026-10"))
        november = report.for_principal(db, app.state.settings, principal, report.month_period("2026-11"))
        december = report.for_principal(db, app.state.settings, principal, report.month_period("2026-12"))
    assert (october.totals.hours, october.totals.cpu_hours, october.totals.gpu_hours) == (2.0, 8.0, 2.0)
    assert (november.totals.hours, november.totals.cpu_hours) == (1.0, 4.0)
    assert december.spans == []
    days = dict(november.by("day"))
    assert len(days) == 30 and days["2026-11-01"].cpu_hours == 4.0 and days["2026-11-02"].sessions == 0


def test_a_pipeline_run_counts_one_cpu_for_its_wall_time(people, app):
    people.user("ada")
    with app.state.sessions() as db:
        ada = get_user(db, "ada").id
        pipeline = Pipeline(name="reduce", owner_id=ada)
        db.add(pipeline)
        db.flush()
        version = PipelineVersion(pipeline_id=pipeline.id, version="1", packed={})
        db.add(version)
        db.flush()
        begin = utcnow() - timedelta(minutes=31)
        db.add(
            PipelineRun(
                id="run1", pipeline_id=pipeline.id, version_id=version.id, owner_id=ada, state="succeeded",
                started_at=begin, ended_at=begin + timedelta(minutes=30),
            )
        )  # fmt: skip
        db.commit()
        found = records.spans(db, begin - timedelta(hours=1), utcnow(), owner_ids=[ada])
    [run] = found
    assert (run.kind, run.ref, run.name, run.cpu, run.gpu, run.cluster) == (
        "run",
        "run1",
        "reduce",
        1.0,
        0,
        "local",
    )
    assert run.seconds_between(begin, utcnow(), utcnow()) == 1800


def test_ended_labs_from_before_records_still_count_once(people, app):
    people.user("ada")
    c = people.login("ada")
    lab = c.post("/api/v1/labs", json={"datalab": "fake"}).json()
    wait_state(c, lab["id"])
    c.post(f"/api/v1/labs/{lab['id']}/stop", json={})
    assert len(c.get("/api/v1/usage").json()["sessions"]) == 1  # the record, not the lab row as well
    with app.state.sessions() as db:
        db.query(UsageRecord).delete()  # as a lab that ended before migration 0012
        db.commit()
        assert db.get(Lab, lab["id"]).state == "stopped"
    [legacy] = c.get("/api/v1/usage").json()["sessions"]
    assert legacy["id"] == lab["id"] and legacy["end"] is not None
