"""Who sees which pipeline and run; inputs limited to files the user may read."""

from __future__ import annotations

from tests.pipelines.conftest import COUNT, HELLO, register, wait_run


def test_private_pipelines_are_invisible_to_others(people):
    people.user("ada", groups=("astro",))
    people.user("bob")
    people.user("mia", groups=("astro",))
    people.user("root", role="admin")
    ada = people.login("ada")
    register(ada, "mine", HELLO)
    register(ada, "team", HELLO, allowed_groups=["astro"], keywords=["teamwork"])
    bob, mia, root = people.login("bob"), people.login("mia"), people.login("root")
    names = lambda c, **q: {p["name"] for p in c.get("/api/v1/pipelines", params=q).json()}  # noqa: E731
    assert {"mine", "team"} <= names(ada)
    assert "mine" not in names(bob) and "team" not in names(bob)
    assert "team" in names(mia) and "mine" not in names(mia)
    assert {"mine", "team"} <= names(root)
    assert bob.get("/api/v1/pipelines/mine").status_code == 404
    assert bob.post("/api/v1/pipelines/mine/runs", json={}).status_code == 404
    assert names(mia, keyword="teamwork") == {"team"}
    assert "hello-world" in names(bob, kind="system") and "team" not in names(mia, kind="system")


def test_runs_are_visible_to_owner_and_admins_only(people):
    people.user("ada", groups=("astro",))
    people.user("mia", groups=("astro",))
    people.user("root", role="admin")
    ada = people.login("ada")
    register(ada, "team", HELLO, allowed_groups=["astro"])
    run = wait_run(ada, ada.post("/api/v1/pipelines/team/runs", json={}).json()["id"])
    mia, root = people.login("mia"), people.login("root")
    for path in ("", "/logs", "/outputs"):
        assert mia.get(f"/api/v1/runs/{run['id']}{path}").status_code == 404
        assert root.get(f"/api/v1/runs/{run['id']}{path}").status_code == 200
    assert mia.post(f"/api/v1/runs/{run['id']}/cancel", json={}).status_code == 404
    assert mia.get("/api/v1/runs").json() == []
    assert [r["id"] for r in root.get("/api/v1/runs", params={"all": True}).json()] == [run["id"]]


def test_inputs_from_a_volume_need_read_access(people, settings, app):
    from datalabs.db.engine import transaction
    from datalabs.db.models import Volume

    people.user("ada", groups=("astro",))
    people.user("bob")
    volume = settings.home.parent / "archive"
    volume.mkdir()
    (volume / "obs.txt").write_text("a\nb\nc\n")
    with transaction(app.state.sessions) as db:
        db.add(Volume(name="Archive", host_path=str(volume), allowed_groups=["astro"]))
    ada, bob = people.login("ada"), people.login("bob")
    register(ada, "count", COUNT, allowed_users=["bob"])
    denied = bob.post("/api/v1/pipelines/count/runs", json={"inputs": {"data": "volume:Archive/obs.txt"}})
    assert denied.status_code == 404 and "input 'data'" in denied.json()["error"]["message"]
    run = ada.post("/api/v1/pipelines/count/runs", json={"inputs": {"data": "volume:Archive/obs.txt"}}).json()
    done = wait_run(ada, run["id"])
    assert done["state"] == "succeeded", done
    out = settings.home / "workspaces/users/ada/pipelines/count" / run["id"] / "lines.txt"
    assert out.read_text().startswith("3 ")
    assert (volume / "obs.txt").read_text() == "a\nb\nc\n"  # read-only: untouched
