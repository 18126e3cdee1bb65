"""Workspace files over the API: roles on team workspaces, uploads, Range, zip, moves, bad paths."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from datalabs.config import Settings

FILES = "/api/v1/workspaces/{ws}/files/{path}"


@pytest.fixture
def settings(tmp_path, db_url):
    return Settings(
        home=tmp_path / "home", db={"url": db_url}, auth={"secret_key": "k"}, workspaces={"user_quota": "5MB"}
    )


@pytest.fixture
def team(people):
    """Team `astro` with a workspace: tess owns it, mia is a member, val a read-only member; ada is not in
    it and root is an admin."""
    for name in ("tess", "mia", "val", "ada"):
        people.user(name)
    people.user("root", role="admin")
    root = people.login("root")
    assert root.post("/api/v1/groups", json={"name": "astro"}).status_code == 201
    for name, role in (("tess", "owner"), ("mia", "member"), ("val", "readonly")):
        assert root.put(f"/api/v1/groups/astro/members/{name}", json={"role": role}).status_code == 200
    tess = people.login("tess")
    assert tess.post("/api/v1/workspaces", json={"team": "astro"}).status_code == 201
    assert (
        tess.put(FILES.format(ws="team:astro", path="shared/readme.txt"), content=b"hello team").status_code
        == 201
    )
    return {name: people.login(name) for name in ("tess", "mia", "val", "ada", "root")} | {
        "anonymous": people.client
    }


READ = ("GET", "shared/readme.txt", None)
LIST = ("GET", "shared", None)
PUT = ("PUT", "shared/new.txt", None)
MKDIR = ("POST", "made", {"op": "mkdir"})
COPY = ("POST", "shared/readme.txt", {"op": "copy", "to": "copied.txt"})
DELETE = ("DELETE", "shared/readme.txt", None)
EXPECT = {
    # who: (read, list, put, mkdir, copy, delete)
    "anonymous": (401,) * 6,
    "ada": (404,) * 6,  # another user: the team workspace is not there for them
    "val": (200, 200, 403, 403, 403, 403),  # read-only member
    "mia": (200, 200, 201, 201, 201, 204),  # member
    "tess": (200, 200, 201, 201, 201, 204),  # owner
    "root": (200, 200, 201, 201, 201, 204),  # admin (not a member)
}


@pytest.mark.parametrize("who", EXPECT)
def test_team_workspace_roles(team, who):
    client = team[who]
    for (method, path, body), want in zip((READ, LIST, PUT, MKDIR, COPY, DELETE), EXPECT[who], strict=True):
        url = FILES.format(ws="team:astro", path=path)
        r = (
            client.request(method, url, json=body)
            if body
            else client.request(method, url, content=b"x" if method == "PUT" else None)
        )
        assert r.status_code == want, f"{who} {method} {path}: {r.status_code} {r.text}"
        if want >= 400:
            assert r.json()["error"]["code"]
    listed = client.get("/api/v1/workspaces")
    if who == "anonymous":
        assert listed.status_code == 401
    else:
        ids = [w["id"] for w in listed.json()]
        assert ("team:astro" in ids) == (who in ("val", "mia", "tess")), ids


def test_only_admins_and_team_owners_create_team_workspaces(team):
    team["root"].post("/api/v1/groups", json={"name": "gnss"})
    for name in ("tess", "mia"):
        team["root"].put(
            f"/api/v1/groups/gnss/members/{name}", json={"role": "owner" if name == "tess" else "member"}
        )
    assert team["mia"].post("/api/v1/workspaces", json={"team": "gnss"}).status_code == 403
    assert team["ada"].post("/api/v1/workspaces", json={"team": "gnss"}).status_code == 404
    assert team["tess"].post("/api/v1/workspaces", json={"team": "gnss", "quota": "1TB"}).status_code == 403
    made = team["root"].post("/api/v1/workspaces", json={"team": "gnss", "quota": "2GB"})
    assert made.status_code == 201 and made.json()["quota"] == 2 * 10**9
    assert team["tess"].post("/api/v1/workspaces", json={"team": "gnss"}).status_code == 409
    assert (
        team["tess"].post("/api/v1/workspaces", json={"team": "astro"}).json()["error"]["code"]
        == "workspace_exists"
    )


def test_personal_workspace_files(people):
    people.user("ada")
    ada = people.login("ada")
    data = os.urandom(300_000)
    assert ada.put(FILES.format(ws="me", path="data/x.bin"), content=data).status_code == 201
    assert ada.put(FILES.format(ws="me", path="data/x.bin"), content=data).status_code == 200  # replaced
    r = ada.get(FILES.format(ws="me", path="data/x.bin"))
    assert r.content == data and r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-disposition"].startswith("attachment")
    part = ada.get(FILES.format(ws="me", path="data/x.bin"), headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = ada.get(FILES.format(ws="me", path="data/x.bin"), headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    bad = ada.get(FILES.format(ws="me", path="data/x.bin"), headers={"Range": "bytes=999999-"})
    assert bad.status_code == 416
    assert ada.post(FILES.format(ws="me", path="data"), json={"op": "copy", "to": "copy"}).status_code == 201
    assert (
        ada.post(FILES.format(ws="me", path="copy"), json={"op": "move", "to": "moved/deeper"}).status_code
        == 201
    )
    assert ada.post(FILES.format(ws="me", path="data"), json={"op": "move", "to": "moved"}).status_code == 409
    assert ada.post(FILES.format(ws="me", path="data"), json={"op": "mkdir"}).status_code == 409
    listing = ada.get(FILES.format(ws="me", path="")).json()
    assert [i["name"] for i in listing["items"]] == ["data", "moved"] and listing["total"] == 2
    found = ada.get(FILES.format(ws="me", path=""), params={"q": "X.B"}).json()["items"]
    assert sorted(i["path"] for i in found) == ["data/x.bin", "moved/deeper/x.bin"]
    z = ada.get(FILES.format(ws="me", path="moved"), params={"format": "zip"})
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(z.content)) as archive:
        assert archive.read("deeper/x.bin") == data
    assert ada.delete(FILES.format(ws="me", path="moved")).status_code == 204
    assert ada.get(FILES.format(ws="me", path="moved")).status_code == 404
    me = ada.get("/api/v1/workspaces/me").json()
    assert me["used"] == len(data) and me["quota"] == 5 * 10**6


def test_over_quota_upload_gets_413_and_changes_nothing(people, settings):
    people.user("ada")
    ada = people.login("ada")
    url = FILES.format(ws="me", path="keep.bin")
    assert ada.put(url, content=b"original").status_code == 201

    def chunks():  # no Content-Length: caught while streaming
        for _ in range(8):
            yield b"x" * 1_000_000

    for kwargs in ({"content": b"x" * 6_000_000}, {"content": chunks()}):
        r = ada.put(url, **kwargs)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "quota_exceeded" and "quota" in r.json()["error"]["message"]
        assert ada.get(url).content == b"original"
    home = settings.home / "workspaces" / "users" / "ada"
    assert sorted(os.listdir(home)) == ["keep.bin"]


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "a%00b",
        "sub/%2E%2E/%2E%2E",
        "x" * 300,
    ],
)
def test_bad_paths_get_a_clear_4xx(people, path):
    people.user("ada")
    ada = people.login("ada")
    for method in ("GET", "PUT", "DELETE"):
        r = ada.request(
            method, f"/api/v1/workspaces/me/files/{path}", content=b"x" if method == "PUT" else None
        )
        assert 400 <= r.status_code < 500 and r.status_code != 404, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] in ("bad_path", "name_too_long", "path_too_long")


def test_symlinks_planted_in_a_workspace_are_not_followed(people, settings, tmp_path):
    people.user("ada")
    ada = people.login("ada")
    ada.put(FILES.format(ws="me", path="x"), content=b"1")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("no")
    os.symlink(tmp_path / "outside", settings.home / "workspaces" / "users" / "ada" / "escape")
    for method, body in (("GET", None), ("PUT", b"x"), ("DELETE", None)):
        r = ada.request(method, FILES.format(ws="me", path="escape/secret"), content=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "symlink", r.text
    z = ada.get(FILES.format(ws="me", path=""), params={"format": "zip"})
    assert zipfile.ZipFile(io.BytesIO(z.content)).namelist() == ["x"]
    assert (tmp_path / "outside" / "secret").read_text() == "no"


def test_unknown_workspaces(people):
    people.user("ada")
    ada = people.login("ada")
    for ws in ("team:nope", "bob", "team:"):
        assert ada.get(FILES.format(ws=ws, path="")).status_code == 404
