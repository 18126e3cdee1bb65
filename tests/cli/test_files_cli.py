"""`datalabs files ...` and `datalabs volumes ...` against a live platform."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from tests.cli.test_cli import run
from tests.live import live_server

pytestmark = pytest.mark.slow


def test_files_and_volumes_commands(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    run(home, "admin", "create-user", "root", "--password", "long-enough-pw", "--admin")
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw")
    run(home, "admin", "create-group", "astro")
    run(home, "admin", "add-member", "astro", "ada", "--role", "owner")
    tokens = {u: run(home, "admin", "create-token", u).stdout.strip() for u in ("root", "ada")}
    local = tmp_path / "local"
    (local / "obs" / "night1").mkdir(parents=True)
    data = os.urandom(3_000_000)
    (local / "obs" / "night1" / "frame.fits").write_bytes(data)
    (local / "obs" / "notes é.txt").write_text("unicode name")
    archive = tmp_path / "archive"
    archive.mkdir()
    with live_server(home) as url:

        def as_(user):
            return {
                "DATALABS_API_URL": url,
                "DATALABS_TOKEN": tokens[user],
                "DATALABS_CREDENTIALS": str(tmp_path / "x"),
            }

        ada = as_("ada")
        assert "uploaded 2 file(s)" in run(home, "files", "put", str(local / "obs"), env=ada).stdout
        listed = json.loads(run(home, "files", "ls", "obs", "--json", env=ada).stdout)
        assert [(i["name"], i["type"]) for i in listed] == [("night1", "dir"), ("notes é.txt", "file")]
        assert "frame.fits" in run(home, "files", "ls", "--find", "FRAME", env=ada).stdout
        out = tmp_path / "out"
        out.mkdir()
        run(home, "files", "get", "obs/night1/frame.fits", str(out), env=ada)
        assert (out / "frame.fits").read_bytes() == data
        run(home, "files", "get", "obs", str(out), env=ada)
        assert sorted(zipfile.ZipFile(out / "obs.zip").namelist()) == ["night1/frame.fits", "notes é.txt"]
        run(home, "files", "mkdir", "-p", "a/b", env=ada)
        run(home, "files", "mv", "obs/notes é.txt", "a/b/notes.txt", env=ada)
        team = run(home, "files", "cp", "a", "from-ada", "--to-ws", "team:astro", env=ada, check=False)
        assert team.returncode == 1 and "no team workspace" in team.stderr
        assert json.loads(run(home, "files", "ls", "a/b", "--json", env=ada).stdout)[0]["name"] == "notes.txt"
        run(home, "files", "rm", "a", env=ada)
        missing = run(home, "files", "ls", "a", env=ada, check=False)
        assert missing.returncode == 1 and "does not exist" in missing.stderr
        bad = run(home, "files", "get", "../etc/passwd", env=ada, check=False)
        assert bad.returncode == 1

        root = as_("root")
        added = run(
            home,
            "volumes",
            "add",
            "GsscDataProducts",
            str(archive),
            "--domain",
            "gnss",
            "--tag",
            "rinex",
            env=root,
        )
        assert "/media/data/GsscDataProducts" in added.stdout
        refused = run(home, "volumes", "add", "Other", str(archive), env=ada, check=False)
        assert refused.returncode == 1 and "administrators" in refused.stderr
        assert json.loads(run(home, "volumes", "ls", "--json", env=ada).stdout)[0]["domain"] == "gnss"
        assert "GsscDataProducts" in run(home, "volumes", "ls", env=ada).stdout
        assert "unregistered" in run(home, "volumes", "rm", "GsscDataProducts", env=root).stdout
        assert json.loads(run(home, "volumes", "ls", "--json", env=ada).stdout) == []
