"""The lab manager's culler leaves the owner a notice when it stops their lab (idle, or ended by itself
with an error), with the fake runtime; a lab its user closed needs none."""

from __future__ import annotations

import functools
import time

import pytest

from tests.api.test_labs import settings, wait_state  # noqa: F401 (the fake runtime's settings fixture)

IDLE = 600  # seconds


@pytest.fixture
def lab(people, app):
    app.state.settings.labs.idle_timeout = IDLE
    people.user("ada")
    ada = people.login("ada")
    made = ada.post("/api/v1/labs", json={"datalab": "fake", "name": "my analysis"}).json()
    assert wait_state(ada, made["id"], ("running",))["state"] == "running"
    return ada, made["id"]


def _cull(people, app) -> None:
    people.client.portal.call(app.state.labs.cull_once)


def test_an_idle_lab_stopped_by_the_culler_leaves_a_notice(people, app, lab):
    ada, lab_id = lab
    # Its last traffic two idle timeouts ago (the recorder keeps monotonic clock readings).
    app.state.labs.activity._last[lab_id] = time.monotonic() - 2 * IDLE
    _cull(people, app)
    assert ada.get(f"/api/v1/labs/{lab_id}").json()["state"] == "stopped"
    [notice] = ada.get("/api/v1/notifications").json()["items"]
    assert notice["text"] == (
        "Your lab 'my analysis' was stopped after 10 minutes without activity; your files are kept."
    )
    assert notice["link"] == "/labs"


def test_a_lab_that_died_leaves_a_notice_with_the_reason(people, app, lab):
    ada, lab_id = lab
    app.state.labs.activity(lab_id)  # in use: not idle
    backend = app.state.labs.backends[lab_id]
    people.client.portal.call(functools.partial(backend.stop, now=True))  # killed behind the platform's back
    _cull(people, app)
    assert ada.get(f"/api/v1/labs/{lab_id}").json()["state"] == "failed"
    [notice] = ada.get("/api/v1/notifications").json()["items"]
    assert notice["text"] == "Your lab 'my analysis' stopped: the lab exited by itself (code -9)."


def test_a_busy_lab_and_one_its_user_closed_leave_none(people, app, lab):
    ada, lab_id = lab
    app.state.labs.activity(lab_id)
    _cull(people, app)
    assert ada.get(f"/api/v1/labs/{lab_id}").json()["state"] == "running"
    backend = app.state.labs.backends[lab_id]
    people.client.portal.call(backend.stop)  # exits with 0: as when the user ends a desktop session
    _cull(people, app)
    assert ada.get(f"/api/v1/labs/{lab_id}").json()["state"] == "stopped"
    assert ada.get("/api/v1/notifications").json()["items"] == []
