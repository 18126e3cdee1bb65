"""Which tracking server a run's tools log to (pipelines/tracking.py, issue 18): the team named at submit
(one of the owner's, else 404 as for labs), or the first of the owner's teams whose tracking server runs;
none without one. The token is the owner's with the tracking scopes alone, revoked when the attempt ends.
Tracking servers here are the fake runtime's (a team-scoped datalab named `mlflow`); a real one, logged
to from a real CWL step, is in tests/mlops/test_pipeline_tracking.py."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from datalabs.config import Settings
from datalabs.db.models import ApiToken, PipelineRun
from datalabs.pipelines import tracking
from tests.api.test_labs import FAKE, wait_state
from tests.catalogue.test_loader import write
from tests.pipelines.conftest import SLEEP, register

TRACKING_FAKE = FAKE.replace("  kind: web\n", "  kind: web\n  scope: team\n").format(command="fake-lab")


@pytest.fixture
def settings(settings: Settings, tmp_path) -> Settings:  # the pipelines' settings, plus fake labs
    root = tmp_path / "defs"
    write(root, "mlflow", TRACKING_FAKE)
    return settings.model_copy(
        update={
            "catalogue": settings.catalogue.model_copy(update={"dirs": [root], "builtin": False}),
            "labs": settings.labs.model_copy(update={"backend": "datalabs.runtimes.testing:FakeRuntime"}),
            # No worker: runs stay queued, and the test grants as the worker would, for runs it names.
            "server": settings.server.model_copy(update={"roles": ["api", "proxy", "manager"]}),
        }
    )


@pytest.fixture
def world(people):
    """ada in astro and helio, each with its (fake) tracking server running; bob in no team."""
    people.user("root", role="admin")
    people.user("ada", groups=("astro", "helio"))
    people.user("bob")
    root, ada = people.login("root"), people.login("ada")
    servers = {}
    for team in ("astro", "helio"):
        assert root.post("/api/v1/workspaces", json={"team": team}).status_code == 201
        lab = ada.post("/api/v1/labs", json={"datalab": "mlflow", "team": team})
        assert lab.status_code == 202, lab.text
        servers[team] = wait_state(ada, lab.json()["id"])["id"]
    register(ada, "sleepy", SLEEP)
    return people, ada, servers


def submit(client, pipeline: str = "sleepy", **body):
    return client.post(f"/api/v1/pipelines/{pipeline}/runs", json={"inputs": {"seconds": 1}, **body})


def grant(app, run_id: str) -> dict[str, str]:
    with app.state.sessions() as db:
        env = tracking.grant(db, app.state.settings, db.get(PipelineRun, run_id), 1)
        db.commit()
        return env


def test_the_named_team_else_the_first_with_a_server(world, app):
    people, ada, servers = world
    default = submit(ada)
    assert default.status_code == 202 and default.json()["tracking_team"] is None
    env = grant(app, default.json()["id"])
    assert env["DATALABS_TRACKING_TEAM"] == "astro"  # the first by name
    assert env["MLFLOW_TRACKING_URI"] == (
        f"http://127.0.0.1:{app.state.settings.labs.api_port}/datalabs/{servers['astro']}"
    )
    named = submit(ada, tracking_team="helio")
    assert named.status_code == 202 and named.json()["tracking_team"] == "helio"
    env = grant(app, named.json()["id"])
    assert env["DATALABS_TRACKING_TEAM"] == "helio"
    assert env["MLFLOW_TRACKING_URI"].endswith(f"/datalabs/{servers['helio']}")

    # The token: ada's, the tracking scopes alone, ended with the attempt.
    name = tracking.token_name(named.json()["id"], 1)
    with app.state.sessions() as db:
        token = db.scalar(select(ApiToken).where(ApiToken.name == name))
        assert token.user_id == db.get(PipelineRun, named.json()["id"]).owner.id
        assert sorted(token.scopes) == ["models:invoke", "tracking:write"]
        assert token.expires_at is not None and token.revoked_at is None
    bearer = {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"}
    server = f"/datalabs/{servers['helio']}/"
    assert people.client.get(server, headers=bearer).status_code not in (401, 403, 404)
    tracking.revoke(app.state.sessions, named.json()["id"], 1)
    with app.state.sessions() as db:
        assert db.scalar(select(ApiToken.revoked_at).where(ApiToken.name == name)) is not None
    # Refused once the proxy's authentication cache (a few seconds, as for every revoked token) lets go.
    deadline = time.monotonic() + 30
    while (status := people.client.get(server, headers=bearer).status_code) != 401:
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


def test_no_variables_without_a_running_server(world, app):
    people, ada, servers = world
    bob = people.login("bob")
    register(bob, "bobs", SLEEP)
    assert grant(app, submit(bob, "bobs").json()["id"]) == {}  # in no team
    stopped = ada.post(f"/api/v1/labs/{servers['helio']}/stop")
    assert stopped.status_code in (200, 202), stopped.text
    wait_state(ada, servers["helio"], ("stopped",))
    assert grant(app, submit(ada, tracking_team="helio").json()["id"]) == {}  # named, not running
    assert grant(app, submit(ada).json()["id"])["DATALABS_TRACKING_TEAM"] == "astro"


def test_a_team_not_the_owners_is_refused_and_nothing_queued(world, app):
    people, ada, servers = world
    bob = people.login("bob")
    register(bob, "bobs", SLEEP)
    for who, team, status in (
        (bob, "astro", 404),  # exists, not bob's
        (ada, "nosuch", 404),
        (ada, "../astro", 404),
        (ada, "x" * 65, 422),
        (ada, ["astro"], 422),
    ):
        r = submit(who, "bobs" if who is bob else "sleepy", tracking_team=team)
        assert r.status_code == status, (team, r.text)
        if status == 404:
            assert r.json()["error"]["code"] == "team_not_found"
    with app.state.sessions() as db:
        assert db.scalar(select(PipelineRun.id).where(PipelineRun.owner.has(name="bob"))) is None
        assert len(list(db.scalars(select(PipelineRun.id)))) == 0
