"""File manager, volume browser, admin volume page and the launch form's volume picker (server-side)."""

from __future__ import annotations

import time

import pytest

from datalabs.accounts import service
from datalabs.db.engine import transaction
from datalabs.db.models import TeamWorkspace
from tests.web.labs_support import browser, lab_settings, launched, text_of, wait_state


@pytest.fixture
def settings(tmp_path, catalogue_dir):
    return lab_settings(tmp_path, catalogue_dir)


def act(client, ws: str, action: str, page: str, csrf_from, **data):
    token = csrf_from(client.get(page).text)
    return client.post(f"/workspace/{ws}/-/{action}", data={**data, "csrf_token": token}, **({}))


def flash(response) -> str:
    return (
        text_of(response.text.split('class="flash', 1)[1].split("</div>", 1)[0])
        if 'class="flash' in response.text
        else ""
    )


def test_file_manager_round_trip(user, csrf_from, settings):
    home = settings.home / "workspaces" / "users" / "bob"
    r = user.get("/workspace")
    assert r.status_code == 200 and str(r.url).endswith("/workspace/me/")
    assert "This folder is empty" in r.text and "of 100.0 GB used" in text_of(r.text)
    r = act(user, "me", "mkdir", "/workspace/me/", csrf_from, folder="", name="obs")
    assert "Folder 'obs' created." in flash(r) and (home / "obs").is_dir()
    token = csrf_from(user.get("/workspace/me/obs/").text)
    r = user.post(
        "/workspace/me/-/upload",
        data={"folder": "obs", "csrf_token": token},
        files=[("file", ("frame ü.fits", b"SIMPLE = T")), ("file", ("b.txt", b"bb"))],
    )
    assert "Uploaded 2 files." in flash(r) and (home / "obs" / "frame ü.fits").read_bytes() == b"SIMPLE = T"
    assert "frame ü.fits" in r.text and "10 bytes" in r.text
    assert 'href="/api/v1/workspaces/me/files/obs?format=zip"' in r.text
    r = act(
        user, "me", "move", "/workspace/me/obs/", csrf_from, folder="obs", name="obs/b.txt", to="obs/c.txt"
    )
    assert "Moved 'obs/b.txt' to 'obs/c.txt'." in flash(r)
    r = act(user, "me", "copy", "/workspace/me/obs/", csrf_from, folder="obs", name="obs", to="obs2")
    assert "Copied" in flash(r) and (home / "obs2" / "c.txt").read_bytes() == b"bb"
    r = user.get("/workspace/me/", params={"q": "C.TXT"})
    assert "obs/c.txt" in r.text and "obs2/c.txt" in r.text and "2 matches" in text_of(r.text)
    r = act(user, "me", "delete", "/workspace/me/", csrf_from, folder="", name="obs2")
    assert "Deleted 'obs2'." in flash(r) and not (home / "obs2").exists()
    r = act(user, "me", "move", "/workspace/me/", csrf_from, folder="", name="obs/c.txt", to="../../x")
    assert "not allowed" in flash(r) and (home / "obs" / "c.txt").exists()
    download = user.get("/workspace/me/obs/c.txt")
    assert download.status_code == 200 and download.content == b"bb"
    assert user.post("/workspace/me/-/mkdir", data={"folder": "", "name": "x"}).status_code == 403  # no CSRF


def test_read_only_team_members_browse_but_cannot_change(client, make_user, login, csrf_from, settings):
    make_user("val")
    with transaction(client.app.state.sessions) as db:
        group = service.create_group(db, "astro")
        service.set_member(db, "astro", "val", "readonly")
        db.add(TeamWorkspace(group_id=group.id))
    team = settings.home / "workspaces" / "teams" / "astro"
    team.mkdir(parents=True)
    (team / "shared.txt").write_text("team")
    login(client, "val")
    r = client.get("/workspace/team:astro/")
    assert "shared.txt" in r.text and "read-only member" in r.text and "data-dropzone" not in r.text
    assert "Team astro" in r.text
    r = act(client, "team:astro", "delete", "/workspace/team:astro/", csrf_from, folder="", name="shared.txt")
    assert "read-only member" in flash(r) and (team / "shared.txt").exists()
    assert client.get("/workspace/team:other/").status_code == 404


def test_admin_registers_volumes_users_browse_them(admin, client, make_user, login, csrf_from, tmp_path):
    archive = tmp_path / "planck"
    (archive / "maps").mkdir(parents=True)
    (archive / "maps" / "LFI.fits").write_bytes(b"x" * 2048)
    page = admin.get("/admin/volumes")
    assert page.status_code == 200 and "Register a data volume" in page.text
    token = csrf_from(page.text)
    r = admin.post(
        "/admin/volumes",
        data={
            "name": "PlanckPublic",
            "host_path": str(archive),
            "description": "Planck maps",
            "mission": "Planck",
            "csrf_token": token,
        },
    )
    assert "Data volume 'PlanckPublic' registered." in flash(r) and str(archive) in r.text
    r = admin.post("/admin/volumes", data={"name": "Bad", "host_path": "/no/such", "csrf_token": token})
    assert r.status_code == 422 and "is not a folder" in text_of(r.text) and 'value="/no/such"' in r.text
    r = admin.post(
        "/admin/volumes",
        data={"name": "Teams", "host_path": str(archive), "groups": "nope", "csrf_token": token},
    )
    assert r.status_code == 422 and "No group named 'nope'" in text_of(r.text)
    make_user("bob")
    bob = browser(client)
    login(bob, "bob")
    assert "PlanckPublic" in bob.get("/volumes").text and "Planck maps" in bob.get("/volumes").text
    r = bob.get("/volumes/PlanckPublic/maps/")
    assert "LFI.fits" in r.text and "2.0 KB" in r.text and "/media/data/PlanckPublic/maps" in r.text
    assert bob.get("/volumes/PlanckPublic/maps/LFI.fits").content == b"x" * 2048
    assert bob.get("/admin/volumes").status_code == 403
    r = admin.post(
        "/admin/volumes/PlanckPublic/delete", data={"csrf_token": csrf_from(admin.get("/admin/volumes").text)}
    )
    assert "unregistered" in flash(r)


def test_launch_form_picks_volumes(user, client, csrf_from, tmp_path):
    archive = tmp_path / "jwst"
    archive.mkdir()
    with transaction(client.app.state.sessions) as db:
        from datalabs.volumes import service as volumes

        root = service.create_user(db, "root", "correct horse battery", role="admin")
        from datalabs.accounts.principal import Principal

        volumes.create(
            db,
            client.app.state.settings,
            Principal(root, frozenset()),
            name="JwstPublic",
            host_path=str(archive),
            description="JWST",
        )
    act(user, "me", "mkdir", "/workspace/me/", csrf_from, folder="", name="results")
    form = user.get("/catalogue/fake/launch").text
    assert 'name="volumes" value="JwstPublic"' in form and '<option value="results">' in form
    r = user.post(
        "/catalogue/fake/launch",
        data={"volumes": "Nope", "csrf_token": csrf_from(form)},
        follow_redirects=False,
    )
    assert r.status_code == 422 and "No data volume named 'Nope'" in text_of(r.text)
    lab_id = launched(user, volumes=["JwstPublic"], custom_volume="results")
    lab = wait_state(user, lab_id)
    assert lab["volumes"] == ["JwstPublic", "workspace:results"] and lab["state"] == "running"


def test_admin_indexes_a_volume_and_follows_it_live(admin, client, make_user, login, csrf_from, tmp_path):
    archive = tmp_path / "planck"
    (archive / "maps").mkdir(parents=True)
    (archive / "maps" / "LFI.fits").write_bytes(b"x" * 2048)
    token = csrf_from(admin.get("/admin/volumes").text)
    form = {"name": "PlanckPublic", "host_path": str(archive), "csrf_token": token}
    assert admin.post("/admin/volumes", data=form).status_code == 200
    row = admin.get("/admin/volumes").text
    assert "0 files" in text_of(row) and "not harvested here" in text_of(row) and "Index now" in row
    assert admin.post("/admin/volumes/PlanckPublic/index", data={}).status_code == 403  # no CSRF token
    r = admin.post("/admin/volumes/PlanckPublic/index", data={"csrf_token": token})
    assert r.url.path == "/admin/volumes/PlanckPublic/index" and "only new or changed" in flash(r)
    deadline = time.monotonic() + 60
    while 'data-state="done"' not in (live := admin.get("/admin/volumes/PlanckPublic/index/status").text):
        assert 'hx-trigger="every 1s"' in live and time.monotonic() < deadline  # polled while active
        time.sleep(0.05)
    assert "hx-trigger" not in live and "1 files" in text_of(live) and "could not be read" in text_of(live)
    assert "LFI.fits" in live  # the unreadable file and why
    assert "indexed" in text_of(admin.get("/admin/volumes").text)
    make_user("bob")
    bob = browser(client)
    login(bob, "bob")
    assert bob.get("/admin/volumes/PlanckPublic/index").status_code == 403
    assert bob.get("/admin/volumes/PlanckPublic/index/status").status_code == 403
    bob_token = csrf_from(bob.get("/volumes").text)
    assert bob.post("/admin/volumes/PlanckPublic/index", data={"csrf_token": bob_token}).status_code == 403
    assert admin.get("/admin/volumes/Nope/index").status_code == 404
