"""labs.service at the database: what a restart claims when two requests (two replicas, a double click)
race for one lab, and the launch limit's message for the pages."""

from __future__ import annotations

import pytest

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import get_user
from datalabs.errors import Conflict
from datalabs.labs import service
from tests.api.test_labs import _stopped, settings  # noqa: F401 (the fake datalabs, limit 2)


def _ada(db) -> Principal:
    return Principal(user=get_user(db, "ada"), groups=frozenset())


def test_of_two_restarts_at_once_one_gets_the_lab(people, app):
    people.user("ada")
    lab_id = _stopped(people.login("ada"))["id"]
    state = app.state
    with state.sessions() as first, state.sessions() as second:
        seen = service.get(first, _ada(first), lab_id)  # the first request has read it...
        assert seen.state == "stopped"
        won, _ = service.reopen(second, state.settings, state.catalogue, _ada(second), lab_id)
        second.commit()
        assert won.state == "pending"
        # ...and goes on from what it read (stopped): the claim, not the read, decides.
        with pytest.raises(Conflict) as lost:
            service.reopen(first, state.settings, state.catalogue, _ada(first), lab_id)
        assert lost.value.code == "lab_busy" and "already being restarted or destroyed" in lost.value.message
        first.rollback()
    with state.sessions() as db:
        assert db.get(service.Lab, lab_id).state == "pending"
        # A destroy that read the lab stopped no longer deletes it: the restart claimed it.
        assert service.delete_ended(db, lab_id) is False


def test_launch_block_says_why_at_the_limit(people, app):
    people.user("ada")
    c = people.login("ada")
    state = app.state
    with state.sessions() as db:
        assert service.launch_block(db, state.settings, _ada(db)) == ""
    for _ in range(2):
        assert c.post("/api/v1/labs", json={"datalab": "fake"}).status_code == 202
    with state.sessions() as db:
        text = service.launch_block(db, state.settings, _ada(db))
    assert text == "You have 2 of 2 labs running: stop one to launch another."


class _NoStart:
    """Records what would be started: these launches test the limit, not the runtime."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def spawn(self, lab_id: str, token: str, **_) -> None:
        self.started.append(lab_id)


def test_twenty_launches_at_once_never_exceed_the_limit(people, app):
    """Issue 16's quota acceptance: one user's 20 concurrent launches, each in its own session and thread
    (as 20 requests are), end with at most their limit of labs; the others are refused, none fails."""
    import threading

    from datalabs.errors import TooManyRequests

    people.user("ada")
    state, starter, outcomes = app.state, _NoStart(), []
    gate = threading.Barrier(20)

    def launch() -> None:
        with state.sessions() as db:
            who = _ada(db)
            gate.wait()  # all at once
            try:
                service.launch(
                    db, state.settings, state.catalogue, starter, who, service.LaunchRequest("fake")
                )
                outcomes.append("launched")
            except TooManyRequests:
                db.rollback()
                outcomes.append("refused")
            except Exception as exc:  # noqa: BLE001 (what a request would answer 500 for)
                db.rollback()
                outcomes.append(f"error: {exc!r}")

    threads = [threading.Thread(target=launch) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(set(outcomes)) == ["launched", "refused"] and outcomes.count("launched") == 2, outcomes
    with state.sessions() as db:
        assert db.query(service.Lab).filter(service.Lab.state.in_(service.ACTIVE)).count() == 2
    assert len(starter.started) == 2  # only committed labs were started
