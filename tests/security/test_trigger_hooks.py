"""Incoming webhooks (pipelines/trigger_hooks.py): a correctly signed, fresh, first call starts one run as
the trigger's owner; everything else is refused and starts nothing."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from datalabs.config import Settings
from datalabs.db.engine import open_database
from datalabs.db.models import PipelineRun, TriggerEvent
from datalabs.errors import Unauthorized
from datalabs.pipelines import trigger_hooks
from tests.pipelines.conftest import COUNT, register


@pytest.fixture
def settings(tmp_path, db_url):
    # No worker: the runs a call queues stay queued, where the tests count them.
    return Settings(
        home=tmp_path / "home", db={"url": db_url}, auth={"secret_key": "k"}, pipelines={"worker": False}
    )


def _setup(people, owner: str = "ada") -> tuple[TestClient, dict]:
    people.user(owner)
    client = people.login(owner)
    register(client, f"count-{owner}", COUNT)
    r = client.put(f"/api/v1/workspaces/me/files/in/{owner}.txt", content=b"1\n2\n")
    assert r.status_code in (200, 201), r.text
    r = client.post(f"/api/v1/pipelines/count-{owner}/triggers", json={"kind": "webhook", "name": "station"})
    assert r.status_code == 201, r.text
    return client, r.json()


def _call(app, trigger_id, secret: str, body: bytes, ts: str | None = None, sig: str | None = None):
    ts = str(int(time.time())) if ts is None else ts
    headers = {"X-Datalabs-Timestamp": ts, "Content-Type": "application/json"}
    headers["X-Datalabs-Signature"] = sig if sig is not None else trigger_hooks.sign(secret, ts, body)
    with TestClient(app) as anonymous:  # no session, no token: the signature is the credential
        return anonymous.post(f"/api/v1/triggers/{trigger_id}/hook", content=body, headers=headers)


def _runs(app) -> int:
    with app.state.sessions() as db:
        return db.scalar(select(func.count()).select_from(PipelineRun))


def _events(app) -> int:
    with app.state.sessions() as db:
        return db.scalar(select(func.count()).select_from(TriggerEvent))


BODY = json.dumps({"inputs": {"data": "me/in/ada.txt"}}).encode()


def test_a_signed_call_starts_one_run_as_the_owner(app, people):
    ada, trigger = _setup(people)
    assert trigger["secret"] and trigger["hook_url"] == f"/api/v1/triggers/{trigger['id']}/hook"
    # The secret is shown once: not in the list, not in the trigger's page.
    assert ada.get(f"/api/v1/triggers/{trigger['id']}").json()["secret"] is None
    assert all(t["secret"] is None for t in ada.get("/api/v1/pipelines/count-ada/triggers").json())
    r = _call(app, trigger["id"], trigger["secret"], BODY)
    assert r.status_code == 202, r.text
    run = ada.get(f"/api/v1/runs/{r.json()['run_id']}").json()
    assert run["owner"] == "ada" and run["inputs"]["data"]["location"] == "me/in/ada.txt"
    assert run["triggered_by"]["trigger"] == trigger["id"] and run["triggered_by"]["kind"] == "webhook"
    events = ada.get(f"/api/v1/triggers/{trigger['id']}").json()["events"]
    assert [e["run_id"] for e in events] == [run["id"]]


def test_bad_signatures_are_refused_and_start_nothing(app, people):
    _, trigger = _setup(people)
    tid, secret = trigger["id"], trigger["secret"]
    ts = str(int(time.time()))
    wrong = [
        trigger_hooks.sign("not-the-secret", ts, BODY),
        trigger_hooks.sign(secret, ts, BODY + b" "),  # signed another body
        trigger_hooks.sign(secret, ts, BODY).replace("sha256=", "sha1="),
        "",
        "sha256=" + "0" * 64,
    ]
    for sig in wrong:
        r = _call(app, tid, secret, BODY, ts=ts, sig=sig)
        assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature", (sig, r.text)
    # The timestamp is part of what is signed: another one with the same signature fails.
    r = _call(app, tid, secret, BODY, ts=str(int(ts) + 1), sig=trigger_hooks.sign(secret, ts, BODY))
    assert r.status_code == 401
    with TestClient(app) as anonymous:
        assert anonymous.post(f"/api/v1/triggers/{tid}/hook", content=BODY).status_code == 401
    assert _runs(app) == 0 and _events(app) == 0


@pytest.mark.parametrize("offset", [-330, -3600, 330, 86400])
def test_a_timestamp_outside_five_minutes_is_refused(app, people, offset):
    _, trigger = _setup(people)
    ts = str(int(time.time()) + offset)
    r = _call(app, trigger["id"], trigger["secret"], BODY, ts=ts)  # correctly signed, but stale/future
    assert r.status_code == 401 and r.json()["error"]["code"] == "stale_timestamp", r.text
    assert _runs(app) == 0 and _events(app) == 0


def test_a_replay_is_refused_also_after_a_restart(app, people, settings):
    _, trigger = _setup(people)
    ts = str(int(time.time()))
    assert _call(app, trigger["id"], trigger["secret"], BODY, ts=ts).status_code == 202
    r = _call(app, trigger["id"], trigger["secret"], BODY, ts=ts)
    assert r.status_code == 401 and r.json()["error"]["code"] == "replayed", r.text
    # Another process (a replica, or this one restarted) opens the database afresh: still a replay.
    engine, fresh = open_database(settings.database_url)
    try:
        sig = trigger_hooks.sign(trigger["secret"], ts, BODY)
        with pytest.raises(Unauthorized, match="replay"):
            trigger_hooks.receive(fresh, settings, trigger["id"], ts, sig, BODY)
    finally:
        engine.dispose()
    assert _runs(app) == 1
    # A new call (a new timestamp) is a new event.
    assert _call(app, trigger["id"], trigger["secret"], BODY, ts=str(int(ts) + 1)).status_code == 202
    assert _runs(app) == 2


def test_an_oversized_body_is_refused(app, people):
    _, trigger = _setup(people)
    body = json.dumps({"inputs": {"data": "me/in/ada.txt"}, "pad": "x" * 70_000}).encode()
    r = _call(app, trigger["id"], trigger["secret"], body)
    assert r.status_code == 413, r.text
    assert _runs(app) == 0 and _events(app) == 0


def test_paused_deleted_and_other_users_triggers(app, people):
    ada, trigger = _setup(people)
    _, bobs = _setup(people, "bob")
    tid, secret = trigger["id"], trigger["secret"]
    # Bob's trigger id with ada's secret (or ada's id with Bob's): the signature does not match.
    assert _call(app, bobs["id"], secret, BODY).status_code == 401
    assert _call(app, tid, bobs["secret"], BODY).status_code == 401
    assert ada.patch(f"/api/v1/triggers/{tid}", json={"paused": True}).json()["paused"] is True
    r = _call(app, tid, secret, BODY)
    assert r.status_code == 409 and r.json()["error"]["code"] == "trigger_paused"
    assert _runs(app) == 0
    assert ada.patch(f"/api/v1/triggers/{tid}", json={"paused": False}).json()["paused"] is False
    assert ada.delete(f"/api/v1/triggers/{tid}").status_code == 204
    r = _call(app, tid, secret, BODY)
    assert r.status_code == 401, r.text  # unknown ids answer as a bad signature does
    assert _call(app, 999_999, secret, BODY).status_code == 401
    assert _runs(app) == 0 and _events(app) == 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ("me/in/../../users/bob/in/bob.txt", (404, 422)),  # out of ada's workspace
        ("/etc/passwd", (422,)),  # a host path
        ("file:///etc/passwd", (422,)),
        ("volume:Secret/x.txt", (404,)),  # no such volume for ada
        ("team:astro/x.txt", (403, 404)),  # not her team
        ("me/in/missing.txt", (404,)),
    ],
)
def test_inputs_naming_files_outside_the_owners_spaces(app, people, data, status):
    _, trigger = _setup(people)
    _setup(people, "bob")
    body = json.dumps({"inputs": {"data": data}}).encode()
    r = _call(app, trigger["id"], trigger["secret"], body)
    assert r.status_code in status, r.text
    assert r.json()["error"]["message"]
    assert _runs(app) == 0 and _events(app) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        json.dumps({"inputs": {"nope": 1}}).encode(),
        json.dumps({"inputs": {"data": 5}}).encode(),
        json.dumps({"inputs": {}, "extra": 1}).encode(),
        json.dumps({"inputs": "me/in/ada.txt"}).encode(),
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_bad_bodies_are_a_clear_422(app, people, body):
    _, trigger = _setup(people)
    r = _call(app, trigger["id"], trigger["secret"], body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"]
    assert _runs(app) == 0 and _events(app) == 0
