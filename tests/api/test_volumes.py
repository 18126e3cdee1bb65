"""Data volumes over the API: registration checks, visibility by group, read-only browsing."""

from __future__ import annotations

import io
import zipfile

import pytest


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive" / "PlanckPublic"
    (root / "maps").mkdir(parents=True)
    (root / "maps" / "LFI_030.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    (root / "README").write_text("Planck public maps")
    return root


@pytest.fixture
def admin(people):
    people.user("root", role="admin")
    people.user("mia", groups=("astro",))
    people.user("ada")
    return people.login("root")


def test_register_browse_download_and_remove(people, admin, archive):
    body = {
        "name": "PlanckPublic",
        "host_path": str(archive),
        "description": "Planck Legacy Archive maps",
        "allowed_groups": ["astro"],
        "mission": ["Planck"],
        "domain": "astronomy",
        "tags": ["cmb"],
    }
    made = admin.post("/api/v1/volumes", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["mount_path"] == "/media/data/PlanckPublic" and made.json()["host_path"] == str(
        archive
    )
    assert admin.post("/api/v1/volumes", json=body).status_code == 409
    mia, ada = people.login("mia"), people.login("ada")
    assert [v["name"] for v in mia.get("/api/v1/volumes").json()] == ["PlanckPublic"]
    assert mia.get("/api/v1/volumes/PlanckPublic").json()["host_path"] is None  # not shown to users
    assert ada.get("/api/v1/volumes").json() == []
    assert ada.get("/api/v1/volumes/PlanckPublic").status_code == 404
    assert ada.get("/api/v1/volumes/PlanckPublic/files/README").status_code == 404
    listing = mia.get("/api/v1/volumes/PlanckPublic/files/").json()
    assert [(i["name"], i["type"]) for i in listing["items"]] == [("maps", "dir"), ("README", "file")]
    assert mia.get("/api/v1/volumes/PlanckPublic/files/README").text == "Planck public maps"
    part = mia.get("/api/v1/volumes/PlanckPublic/files/README", headers={"Range": "bytes=0-5"})
    assert part.status_code == 206 and part.text == "Planck"
    z = mia.get("/api/v1/volumes/PlanckPublic/files/maps", params={"format": "zip"})
    assert zipfile.ZipFile(io.BytesIO(z.content)).namelist() == ["LFI_030.fits"]
    assert mia.get("/api/v1/volumes/PlanckPublic/files/%2e%2e/%2e%2e").status_code == 422
    # read-only: there is no write route for volumes at all
    assert mia.put("/api/v1/volumes/PlanckPublic/files/new", content=b"x").status_code == 405
    assert mia.delete("/api/v1/volumes/PlanckPublic").status_code == 403
    assert admin.delete("/api/v1/volumes/PlanckPublic").status_code == 204
    assert archive.joinpath("README").exists()  # files stay
    assert mia.get("/api/v1/volumes/PlanckPublic").status_code == 404


@pytest.mark.parametrize(
    ("name", "path", "code"),
    [
        ("bad name", "{archive}", "invalid_volume_name"),
        ("X", "{archive}", "invalid_volume_name"),
        ("Rel", "relative/path", "bad_host_path"),
        ("Missing", "/no/such/folder", "bad_host_path"),
        ("Home", "{home}", "bad_host_path"),
        ("Db", "{home}/workspaces", "bad_host_path"),
    ],
)
def test_bad_registrations(admin, archive, settings, name, path, code):
    path = path.format(archive=archive, home=settings.home)
    r = admin.post("/api/v1/volumes", json={"name": name, "host_path": path})
    assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text


def test_unknown_group_is_refused(admin, archive):
    r = admin.post(
        "/api/v1/volumes", json={"name": "Planck", "host_path": str(archive), "allowed_groups": ["nope"]}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "group_not_found"


def test_roots_restrict_where_volumes_may_come_from(people, tmp_path, archive, app):
    app.state.settings.volumes.roots = [tmp_path / "elsewhere"]
    people.user("root", role="admin")
    root = people.login("root")
    r = root.post("/api/v1/volumes", json={"name": "Planck", "host_path": str(archive)})
    assert r.status_code == 422 and "must lie under" in r.json()["error"]["message"]


def test_launch_checks_chosen_volumes(people, admin, archive, settings):
    admin.post(
        "/api/v1/volumes",
        json={"name": "PlanckPublic", "host_path": str(archive), "allowed_groups": ["astro"]},
    )
    ada = people.login("ada")
    r = ada.post("/api/v1/labs", json={"datalab": "jupyterlab", "volumes": ["PlanckPublic"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_volume"
    r = ada.post("/api/v1/labs", json={"datalab": "jupyterlab", "volumes": ["workspace:nope"]})
    assert r.status_code == 422 and "no folder 'nope'" in r.json()["error"]["message"]


def _settled(client, name: str, timeout: float = 60) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/v1/volumes/{name}/harvest").json()
        if not status["active"] or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_index_now_only_for_administrators_and_its_progress_is_followed(people, admin, archive, client):
    body = {"name": "PlanckPublic", "host_path": str(archive), "allowed_groups": ["astro"]}
    assert admin.post("/api/v1/volumes", json=body).status_code == 201
    assert admin.get("/api/v1/volumes/PlanckPublic/harvest").json()["state"] == "never"
    url = "/api/v1/volumes/PlanckPublic/harvest"
    mia, ada = people.login("mia"), people.login("ada")  # mia sees the volume, ada does not
    assert client.post(url).status_code == 401 and client.get(url).status_code == 401
    for user in (mia, ada):
        assert user.post(url).status_code == 403 and user.get(url).status_code == 403
    read_only = people.token("root", scopes=["volumes:read"])
    assert client.post(url, headers=read_only).status_code == 403
    assert admin.post("/api/v1/volumes/Nope/harvest").status_code == 404
    started = admin.post(url)
    assert started.status_code == 202 and started.json()["requested_by"] == "root", started.text
    done = _settled(admin, "PlanckPublic")
    assert done["state"] == "done" and done["seen"] == 2 and done["added"] == 2, done
    found = mia.get("/api/v1/assets/search", params={"q": "LFI_030"}).json()
    assert [a["path"] for a in found["items"]] == ["maps/LFI_030.fits"]  # the explorer sees it at once
    assert ada.get("/api/v1/assets/search", params={"q": "LFI_030"}).json()["total"] == 0
    (archive / "maps" / "LFI_044.fits").write_bytes((archive / "maps" / "LFI_030.fits").read_bytes())
    assert admin.post(url).status_code == 202
    again = _settled(admin, "PlanckPublic")
    assert (again["added"], again["unchanged"], again["todo"]) == (1, 2, 1)  # only the new file read
