"""Two platform processes on one database (in one test process, each with its own event loop), the fake
runtime: the replica holding the manager lease starts what the other launches, with a token of its own;
stops asked through the other are carried out by it; the other's proxy routes to its labs from the
database; and when the manager stops, the other takes the lease over and re-attaches to the labs."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from datalabs.app import create_app
from datalabs.db.models import ApiToken, Lab
from tests.api.test_labs import settings, wait_state  # noqa: F401 (the fake runtime's settings fixture)
from tests.conftest import PASSWORD


@pytest.fixture
def replicas(people, app):
    """(manager app, its client), (other app, its client), a user logged in on each: ada."""
    app.state.settings.server.sync_interval = 0.1
    people.user("ada")
    other = create_app(app.state.settings)
    with TestClient(other) as other_client:
        assert app.state.labs.holding and not other.state.labs.holding
        here = people.login("ada")
        login = other_client.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
        other_client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        yield (app, here), (other, other_client)


def until(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_launch_through_another_replica_starts_on_the_manager_with_a_token_of_its_own(replicas):
    (manager, here), (other, there) = replicas
    manager.state.labs.holding = False  # for a moment: to read the token made at launch
    launched = there.post("/api/v1/labs", json={"datalab": "fake"})
    assert launched.status_code == 202, launched.text
    lab_id = launched.json()["id"]
    with other.state.sessions() as db:
        first_token = db.get(Lab, lab_id).token_id
    manager.state.labs.holding = True
    assert wait_state(there, lab_id)["state"] == "running"
    assert lab_id in manager.state.labs.backends and lab_id not in other.state.labs.backends
    with manager.state.sessions() as db:
        token_id = db.get(Lab, lab_id).token_id
        tokens = set(db.scalars(select(ApiToken.id)))
    assert token_id != first_token and token_id in tokens and first_token not in tokens
    # Either replica's proxy reaches it (the other one learns the route from the database).
    assert there.get(f"/datalabs/{lab_id}/").status_code == 200
    assert here.get(f"/datalabs/{lab_id}/").status_code == 200


def test_a_stop_through_another_replica_is_done_by_the_manager(replicas):
    (manager, here), (other, there) = replicas
    lab_id = here.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"]
    assert wait_state(there, lab_id)["state"] == "running"
    assert there.get(f"/datalabs/{lab_id}/").status_code == 200
    stopped = there.post(f"/api/v1/labs/{lab_id}/stop", json={})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "stopped"
    assert lab_id not in manager.state.labs.backends
    until(lambda: there.get(f"/datalabs/{lab_id}/").status_code == 404)
    assert here.get(f"/datalabs/{lab_id}/").status_code == 404


def test_a_pending_lab_stopped_through_another_replica_never_starts(replicas):
    (manager, here), (other, there) = replicas
    manager.state.labs.holding = False  # the manager is busy: launches wait
    lab_id = there.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"]
    stopped = there.post(f"/api/v1/labs/{lab_id}/stop", json={})
    assert stopped.json()["state"] == "stopped"
    manager.state.labs.holding = True
    time.sleep(0.5)  # several rounds of the manager's follow-up
    assert there.get(f"/api/v1/labs/{lab_id}").json()["state"] == "stopped"
    assert lab_id not in manager.state.labs.backends


def test_when_the_manager_stops_the_other_replica_takes_over_and_keeps_the_labs(people, app):
    app.state.settings.server.sync_interval = 0.1
    people.user("ada")
    other = create_app(app.state.settings)
    with TestClient(other) as there:
        login = there.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
        there.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        lab_id = there.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"]
        assert wait_state(there, lab_id)["state"] == "running"
        assert not other.state.labs.holding
        people.client.__exit__(None, None, None)  # the manager shuts down: it releases its lease
        until(lambda: lab_id in other.state.labs.backends)  # re-attached, not restarted
        assert there.get(f"/api/v1/labs/{lab_id}").json()["state"] == "running"
        # (The fake lab served from the first app's event loop, gone with it: tests/replicas has real labs
        # outliving a killed manager and reached through the survivors.)


def test_the_start_is_followed_through_a_replica_that_does_not_manage_it(replicas):
    (manager, here), (other, there) = replicas
    manager.state.labs.holding = False  # busy for a moment: the lab waits, queued
    lab_id = there.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"]
    threading.Timer(1.0, setattr, (manager.state.labs, "holding", True)).start()
    with there.stream("GET", f"/api/v1/labs/{lab_id}/events") as stream:
        lines = [line for line in stream.iter_lines() if line.startswith(("event:", "data:"))]
    assert lines[0] == "event: progress" and '"Queued"' in lines[1], lines
    assert lines[-2] == "event: ready" and '"Running"' in lines[-1], lines


def test_a_token_revoked_through_one_replica_is_refused_by_the_other_at_once(replicas, people):
    (manager, here), (other, there) = replicas
    other.state.authenticator.ttl = 300  # without the generation, the other would trust it 5 minutes
    made = here.post("/api/v1/tokens", json={"name": "script", "scopes": []}).json()
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert there.get("/api/v1/me", headers=bearer).status_code == 200  # cached there now
    assert here.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
    until(lambda: there.get("/api/v1/me", headers=bearer).status_code == 401, timeout=5)
