"""Labs through the API with the fake runtime (fast): launch, events, limits, stop, destroy, visibility.
The same flow with LocalRuntime and real JupyterLab is in tests/labs/test_jupyter.py."""

import time

import pytest

from datalabs.config import Settings
from tests.catalogue.test_loader import write

FAKE = """\
title: Fake Lab
version: "1.0"
runtime:
  kind: web
  command: [{command}]
  resources:
    default: {{cpu: 1, memory: 1G}}
    maximum: {{cpu: 2, memory: 4G}}
"""


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
        labs={
            "backend": "datalabs.runtimes.testing:FakeRuntime",
            "max_running_per_user": 2,
            "group_limits": {"power": 3},
        },
    )


def events(client, lab_id):
    with client.stream("GET", f"/api/v1/labs/{lab_id}/events") as stream:
        return [line for line in stream.iter_lines() if line.startswith("event:")]


def wait_state(client, lab_id, states=("running", "failed")):
    for _ in range(100):
        lab = client.get(f"/api/v1/labs/{lab_id}").json()
        if lab["state"] in states:
            return lab
        time.sleep(0.05)
    raise AssertionError(f"lab stayed {lab['state']}")


def test_launch_follow_stop_destroy(people, settings):
    people.user("ada")
    c = people.login("ada")
    r = c.post("/api/v1/labs", json={"datalab": "fake", "resources": {"cpu": 2, "memory": "2G"}})
    assert r.status_code == 202
    lab = r.json()
    assert lab["state"] == "pending" and lab["path"] == f"/datalabs/{lab['id']}/"
    # A browser opens the lab on its own origin (labs.origin_url, {port}: the server's).
    assert lab["url"] == f"http://{lab['id']}.lab.localhost:{settings.server.port}/datalabs/{lab['id']}/"
    assert lab["resources"] == {"cpu": 2.0, "memory": "2.0 GB", "gpu": 0}
    assert events(c, lab["id"])[-1] == "event: ready"
    assert wait_state(c, lab["id"])["state"] == "running"
    assert "serving on" in c.get(f"/api/v1/labs/{lab['id']}/logs").text
    assert [x["id"] for x in c.get("/api/v1/labs", params={"active": True}).json()] == [lab["id"]]
    stopped = c.post(f"/api/v1/labs/{lab['id']}/stop", json={}).json()
    assert stopped["state"] == "stopped" and stopped["reason"] == "stopped by its owner"
    assert c.delete(f"/api/v1/labs/{lab['id']}").status_code == 204
    assert c.get(f"/api/v1/labs/{lab['id']}").status_code == 404
    assert not (settings.home / "labs" / lab["id"]).exists()


def test_failed_start_says_why(people):
    people.user("ada")
    c = people.login("ada")
    lab = c.post("/api/v1/labs", json={"datalab": "crashy"}).json()
    assert events(c, lab["id"])[-1] == "event: failed"
    failed = wait_state(c, lab["id"])
    assert failed["state"] == "failed" and "exited with code 3" in failed["reason"]


def test_running_limit_and_group_override(people):
    people.user("ada")
    people.user("pat", groups=("power",))
    ada, pat = people.login("ada"), people.login("pat")
    for _ in range(2):
        assert ada.post("/api/v1/labs", json={"datalab": "fake"}).status_code == 202
    third = ada.post("/api/v1/labs", json={"datalab": "fake"})
    assert third.status_code == 429 and "stop one" in third.json()["error"]["message"]
    for _ in range(3):
        assert pat.post("/api/v1/labs", json={"datalab": "fake"}).status_code == 202
    assert pat.post("/api/v1/labs", json={"datalab": "fake"}).status_code == 429


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"datalab": "fake", "resources": {"cpu": 3}}, 422, "over_maximum"),
        ({"datalab": "fake", "resources": {"memory": "64G"}}, 422, "over_maximum"),
        ({"datalab": "fake", "resources": {"memory": "lots"}}, 422, "invalid"),
        ({"datalab": "fake", "volumes": ["Nope"]}, 422, "unknown_volume"),
        ({"datalab": "fake", "cluster": "mars"}, 422, "unknown_cluster"),
        ({"datalab": "nope"}, 404, "datalab_not_found"),
        ({"datalab": "fake", "version": "9"}, 404, "version_not_found"),
        ({}, 422, "invalid"),
    ],
)
def test_bad_launch_requests(people, body, status, code):
    people.user("ada")
    r = people.login("ada").post("/api/v1/labs", json=body)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


def test_other_users_cannot_see_or_stop_a_lab_admins_can(people):
    people.user("ada")
    people.user("bob")
    people.user("root", role="admin")
    lab = people.login("ada").post("/api/v1/labs", json={"datalab": "fake"}).json()
    bob = people.login("bob")
    for method, path in (
        ("GET", ""),
        ("GET", "/logs"),
        ("GET", "/events"),
        ("POST", "/stop"),
        ("DELETE", ""),
    ):
        assert bob.request(method, f"/api/v1/labs/{lab['id']}{path}", json={}).status_code == 404
    assert bob.get("/api/v1/labs").json() == []
    root = people.login("root")
    assert root.get("/api/v1/labs").json() == []
    assert [x["id"] for x in root.get("/api/v1/labs", params={"all": True}).json()] == [lab["id"]]
    wait_state(root, lab["id"])
    stopped = root.post(f"/api/v1/labs/{lab['id']}/stop", json={}).json()
    assert stopped["state"] == "stopped" and stopped["reason"] == "stopped by administrator root"


def test_lab_token_is_scoped_and_revoked_when_the_lab_ends(people, app):
    people.user("ada")
    c = people.login("ada")
    lab = c.post("/api/v1/labs", json={"datalab": "fake"}).json()
    wait_state(c, lab["id"])
    tokens = {t["name"]: t for t in c.get("/api/v1/tokens").json()}
    assert (
        "labs:read" in tokens[f"lab {lab['id']}"]["scopes"]
        and "all" not in tokens[f"lab {lab['id']}"]["scopes"]
    )
    c.post(f"/api/v1/labs/{lab['id']}/stop", json={})
    assert f"lab {lab['id']}" not in {t["name"] for t in c.get("/api/v1/tokens").json()}
