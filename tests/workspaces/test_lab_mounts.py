"""Inside real sandboxed labs (`datalabs serve`, LocalRuntime, bubblewrap), launched through the API:
the personal workspace is writable; a team workspace is writable for members, read-only for read-only
members and absent for others; chosen volumes are read-only (EROFS) and the others absent."""

from __future__ import annotations

import errno
import json
import shutil
import time

import httpx
import pytest

from tests.labs.test_jupyter import admin
from tests.labs.test_restart import DEFINITION, LABAPP
from tests.live import live_server

pytestmark = pytest.mark.slow


def wait_running(client: httpx.Client, lab_id: str) -> None:
    for _ in range(1200):
        lab = client.get(f"/api/v1/labs/{lab_id}").json()
        if lab["state"] in ("running", "failed"):
            assert lab["state"] == "running", lab["reason"]
            return
        time.sleep(0.05)
    raise AssertionError("lab did not start")


def test_mounts_inside_labs(tmp_path):
    home, catalogue = tmp_path / "home", tmp_path / "defs"
    (catalogue / "mini").mkdir(parents=True)
    (catalogue / "mini" / "datalab-meta.yml").write_text(DEFINITION)
    shutil.copy(LABAPP, catalogue / "mini" / "labapp.py")
    for name in ("planck", "jwst"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "map.fits").write_text(f"{name} data")
    home.mkdir()
    for user in ("mia", "val", "ada", "root"):
        admin(
            home,
            "create-user",
            user,
            "--password",
            "long-enough-pw",
            *(["--admin"] if user == "root" else []),
        )
    admin(home, "create-group", "astro")
    admin(home, "add-member", "astro", "mia")
    admin(home, "add-member", "astro", "val", "--role", "readonly")
    tokens = {user: admin(home, "create-token", user) for user in ("mia", "val", "ada", "root")}
    env = {"DATALABS_CATALOGUE__DIRS": json.dumps([str(catalogue)])}
    with live_server(home, env) as url:
        c = {
            u: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {t}"}, timeout=60)
            for u, t in tokens.items()
        }
        assert c["root"].post("/api/v1/workspaces", json={"team": "astro"}).status_code == 201
        for name in ("planck", "jwst"):
            r = c["root"].post(
                "/api/v1/volumes", json={"name": name.title(), "host_path": str(tmp_path / name)}
            )
            assert r.status_code == 201, r.text
        assert c["mia"].put("/api/v1/workspaces/me/files/results/out.txt", content=b"mine").status_code == 201
        chosen = {"mia": ["Planck", "workspace:results"], "val": ["Jwst"], "ada": []}
        labs = {}
        for user, volumes in chosen.items():
            r = c[user].post("/api/v1/labs", json={"datalab": "mini", "volumes": volumes})
            assert r.status_code == 202, r.text
            labs[user] = r.json()["id"]
        try:
            for user, lab_id in labs.items():
                wait_running(c[user], lab_id)

            def write(user: str, path: str) -> dict:
                return c[user].get(f"/datalabs/{labs[user]}/write", params={"path": path}).json()

            def read(user: str, path: str) -> dict:
                return c[user].get(f"/datalabs/{labs[user]}/read", params={"path": path}).json()

            team = "/media/home/team_workspaces/astro/from-{}.txt"
            for user in ("mia", "val", "ada"):  # personal workspace: writable for everyone
                assert "wrote" in write(user, "/media/home/my_workspace/x.txt"), user
            assert "wrote" in write("mia", team.format("mia"))  # member
            assert (home / "workspaces/teams/astro/from-mia.txt").exists()
            assert read("val", team.format("mia"))["content"] == "hello"
            assert write("val", team.format("val"))["errno"] == errno.EROFS  # read-only member
            assert read("ada", team.format("mia"))["errno"] == errno.ENOENT  # not a member: absent
            assert read("mia", "/media/data/Planck/map.fits")["content"] == "planck data"
            assert write("mia", "/media/data/Planck/new.txt")["errno"] == errno.EROFS
            assert read("mia", "/media/data/results/out.txt")["content"] == "mine"  # custom volume
            assert write("mia", "/media/data/results/new.txt")["errno"] == errno.EROFS
            assert read("mia", "/media/data/Jwst/map.fits")["errno"] == errno.ENOENT  # not chosen
            assert read("val", "/media/data/Jwst/map.fits")["content"] == "jwst data"
            assert read("val", "/media/data/Planck/map.fits")["errno"] == errno.ENOENT
            assert read("ada", "/media/data/Planck/map.fits")["errno"] == errno.ENOENT
            assert c["mia"].get(f"/api/v1/labs/{labs['mia']}").json()["volumes"] == chosen["mia"]
        finally:
            for user, lab_id in labs.items():
                c[user].post(f"/api/v1/labs/{lab_id}/stop", json={})
