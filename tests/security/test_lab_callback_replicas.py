"""A Slurm lab's port report that reaches a replica which does not follow the lab's start (issue 17): it is
checked there against the start's digest saved in the lab's record (labs/port_reports.py), kept, and taken
by the manager replica's start; forgeries are refused as by the following process and store nothing."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from sqlalchemy import select

from datalabs.clusters.settings import ClusterSettings
from datalabs.db.engine import transaction
from datalabs.db.models import Lab, LabPortReport, User
from datalabs.labs import port_reports
from datalabs.runtimes.slurm_port import CALLBACKS, new_token

JOB = "4242"


@pytest.fixture
def lab(app, people):
    """A lab starting on cluster "hpc" (ports 40000-40100), followed by another replica: (id, token,
    digest of the token)."""
    app.state.settings.clusters = [
        ClusterSettings(name="local"),
        ClusterSettings(
            name="hpc", backend="slurm", options={"endpoint": "port", "port_range": "40000-40100"}
        ),
    ]
    people.user("ada")
    lab_id, (token, digest) = secrets.token_hex(8), new_token()
    with transaction(app.state.sessions) as db:
        owner = db.scalar(select(User.id).where(User.name == "ada"))
        db.add(
            Lab(
                id=lab_id,
                owner_id=owner,
                datalab="jupyterlab",
                version="1",
                state="starting",
                cluster="hpc",
                backend="slurm",
                runtime_state={"job_id": JOB, "callback": digest, "lab_id": lab_id},
            )
        )
    yield lab_id, token, digest
    CALLBACKS.discard(lab_id, digest)


def report(client, lab_id: str, token: str | None, port: int = 40000):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(f"/api/v1/labs/{lab_id}/callback", json={"port": port}, headers=headers)


def kept(app) -> list[tuple[str, int]]:
    with app.state.sessions() as db:
        return [(r.lab_id, r.port) for r in db.scalars(select(LabPortReport))]


def test_a_report_to_another_replica_reaches_the_start_through_the_manager(app, client, lab):
    lab_id, token, digest = lab
    assert report(client, lab_id, token).status_code == 204
    assert kept(app) == [(lab_id, 40000)]
    again = report(client, lab_id, token, 40001)
    assert again.status_code == 409, again.text
    CALLBACKS.expect(lab_id, digest, JOB, ports=(40000, 40100))  # the manager replica follows the start
    assert asyncio.run(port_reports.hand_over(app.state.sessions)) == 1
    assert CALLBACKS.port(lab_id, digest, JOB) == 40000
    assert kept(app) == []


@pytest.mark.parametrize("forged", ["no token", "wrong token", "another lab's token", "not starting"])
def test_forged_reports_are_refused_and_keep_nothing(app, client, lab, forged):
    lab_id, token, _ = lab
    if forged == "not starting":
        with transaction(app.state.sessions) as db:
            db.get(Lab, lab_id).state = "running"
    presented = {"no token": None, "wrong token": new_token()[0], "another lab's token": new_token()[0]}.get(
        forged, token
    )
    answer = report(client, lab_id, presented)
    assert answer.status_code == (401 if forged == "no token" else 403), answer.text
    assert kept(app) == []
    unknown = report(client, secrets.token_hex(8), token)  # a lab that does not exist: the same answer
    assert unknown.status_code == 403 and kept(app) == []


def test_a_port_outside_the_clusters_range_is_refused(app, client, lab):
    lab_id, token, _ = lab
    answer = report(client, lab_id, token, 50000)
    assert answer.status_code == 422 and "40000-40100" in answer.json()["error"]["message"]
    assert kept(app) == []
    assert report(client, lab_id, token, 40050).status_code == 204  # the refusal spent nothing


def test_a_report_for_a_start_that_is_over_is_dropped(app, client, lab):
    lab_id, token, digest = lab
    assert report(client, lab_id, token).status_code == 204
    with transaction(app.state.sessions) as db:
        db.get(Lab, lab_id).state = "failed"
    assert asyncio.run(port_reports.hand_over(app.state.sessions)) == 0
    assert kept(app) == []
