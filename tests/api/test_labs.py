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


# ---- restart -------------------------------------------------------------------------------------


def _stopped(client, **body) -> dict:
    lab = client.post("/api/v1/labs", json={"datalab": "fake", **body}).json()
    wait_state(client, lab["id"])
    stopped = client.post(f"/api/v1/labs/{lab['id']}/stop", json={}).json()
    assert stopped["state"] == "stopped"
    return stopped


def test_restart_starts_the_same_lab_again_under_its_id(people, app):
    people.user("ada")
    c = people.login("ada")
    before = _stopped(c, name="Analysis", resources={"cpu": 2, "memory": "2G"})
    old_token = {t["name"]: t["id"] for t in c.get("/api/v1/tokens", params={"all": True}).json()}
    r = c.post(f"/api/v1/labs/{before['id']}/restart", json={})
    assert r.status_code == 202, r.text
    after = r.json()
    assert after["state"] == "pending" and after["reason"] == "" and after["ended_at"] is None
    same = ("id", "url", "path", "name", "datalab", "version", "resources", "volumes", "created_at")
    assert {k: after[k] for k in same} == {k: before[k] for k in same}
    assert events(c, before["id"])[-1] == "event: ready"
    running = wait_state(c, before["id"])
    assert running["state"] == "running" and running["started_at"] is not None
    # Its log goes on from the first run's, with a mark where the second begins.
    log = c.get(f"/api/v1/labs/{before['id']}/logs").text
    assert log.count("serving on") == 2 and "---- restarted at" in log
    assert log.index("---- restarted at") < log.rindex("serving on")
    # A fresh API token for the lab (the first one died with the first run), and it works.
    tokens = {t["name"]: t for t in c.get("/api/v1/tokens").json()}
    assert f"lab {before['id']}" in tokens and tokens[f"lab {before['id']}"]["id"] not in old_token.values()
    # Through the proxy, on the same path as before.
    lab_path = f"/datalabs/{before['id']}/api/status"
    assert c.get(lab_path, headers=people.token("ada", ["labs:write"])).text == "fake lab ok"


def test_a_failed_lab_can_be_restarted(people):
    people.user("ada")
    c = people.login("ada")
    lab = c.post("/api/v1/labs", json={"datalab": "crashy"}).json()
    assert wait_state(c, lab["id"])["state"] == "failed"
    assert c.post(f"/api/v1/labs/{lab['id']}/restart", json={}).status_code == 202
    again = wait_state(c, lab["id"])
    assert again["state"] == "failed" and "exited with code 3" in again["reason"]


def test_restart_refusals_leave_the_lab_as_it_was(people, settings):
    people.user("ada")
    people.user("bob")
    people.user("root", role="admin")
    ada = people.login("ada")
    running = ada.post("/api/v1/labs", json={"datalab": "fake"}).json()
    r = ada.post(f"/api/v1/labs/{running['id']}/restart", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "lab_active", r.text
    assert "only a stopped or failed lab" in r.json()["error"]["message"]

    stopped = _stopped(ada)
    ada.post("/api/v1/labs", json={"datalab": "fake"})  # two running: ada's limit
    r = ada.post(f"/api/v1/labs/{stopped['id']}/restart", json={})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_labs", r.text
    assert "stop one to launch another" in r.json()["error"]["message"]
    lab = ada.get(f"/api/v1/labs/{stopped['id']}").json()
    assert lab["state"] == "stopped" and lab["reason"] == "stopped by its owner"
    assert lab["ended_at"] == stopped["ended_at"]

    # Not hers: bob does not learn it exists; an administrator may stop or destroy it but not restart
    # it (it would run as ada, on her limit).
    bob = people.login("bob")
    assert bob.post(f"/api/v1/labs/{stopped['id']}/restart", json={}).status_code == 404
    r = people.login("root").post(f"/api/v1/labs/{stopped['id']}/restart", json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_owner", r.text
    assert "only ada can restart" in r.json()["error"]["message"]
    assert ada.get(f"/api/v1/labs/{stopped['id']}").json()["state"] == "stopped"
    assert people.client.post(f"/api/v1/labs/{stopped['id']}/restart", json={}).status_code == 401
    assert ada.post("/api/v1/labs/0123456789abcdef/restart", json={}).status_code == 404


def test_restart_refused_once_its_version_left_the_catalogue(people, settings):
    people.user("ada")
    people.user("root", role="admin")
    version = settings.catalogue.dirs[0] / "fake" / "versions" / "0.9"
    write(version.parent, "0.9", FAKE.replace('"1.0"', '"0.9"').format(command="fake-lab"))
    root = people.login("root")
    assert root.post("/api/v1/catalogue/reload", json={}).status_code == 200
    ada = people.login("ada")
    lab = _stopped(ada, version="0.9")
    assert lab["version"] == "0.9"
    for path in version.iterdir():
        path.unlink()
    version.rmdir()
    assert root.post("/api/v1/catalogue/reload", json={}).status_code == 200
    r = ada.post(f"/api/v1/labs/{lab['id']}/restart", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_removed", r.text
    assert "version 0.9 of datalab 'fake' is no longer in the catalogue" in r.json()["error"]["message"]
    assert ada.get(f"/api/v1/labs/{lab['id']}").json()["state"] == "stopped"


def test_restart_refused_when_a_volume_is_no_longer_allowed(people, settings, tmp_path):
    people.user("ada", groups=("astro",))
    people.user("root", role="admin")
    (tmp_path / "volume").mkdir()
    root = people.login("root")
    body = {"name": "Demo", "host_path": str(tmp_path / "volume"), "allowed_groups": ["astro"]}
    assert root.post("/api/v1/volumes", json=body).status_code == 201
    ada = people.login("ada")
    lab = _stopped(ada, volumes=["Demo"])
    assert lab["volumes"] == ["Demo"]
    assert root.delete("/api/v1/groups/astro/members/ada").status_code in (200, 204)
    r = ada.post(f"/api/v1/labs/{lab['id']}/restart", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "volume_not_allowed", r.text
    assert "no data volume named 'Demo' is available to you" in r.json()["error"]["message"]
    assert ada.get(f"/api/v1/labs/{lab['id']}").json()["state"] == "stopped"


def test_restart_then_destroy_at_once_leaves_nothing_running(people, app):
    people.user("ada")
    c = people.login("ada")
    lab = _stopped(c)
    assert c.post(f"/api/v1/labs/{lab['id']}/restart", json={}).status_code == 202
    assert c.delete(f"/api/v1/labs/{lab['id']}").status_code == 204
    token = people.token("ada", ["labs:write"])
    for _ in range(100):  # the start that was under way notices the lab is gone and undoes itself
        if lab["id"] not in app.state.labs.backends and not app.state.labs._tasks:
            break
        time.sleep(0.05)
    assert lab["id"] not in app.state.labs.backends
    assert c.get(f"/datalabs/{lab['id']}/api/status", headers=token).status_code == 404
    assert c.get(f"/api/v1/labs/{lab['id']}").status_code == 404
