"""`datalabs apps ...` against a real server: create from a folder with the build log followed, logs,
share, submit, unpublish, export, import."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.builder.support import make_sources
from tests.labs.test_jupyter import admin
from tests.live import DATALABS, live_server

pytestmark = pytest.mark.slow


def test_apps_commands(tmp_path):
    home = tmp_path / "home"
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    admin(home, "create-user", "bob", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    src = make_sources(tmp_path / "src")
    with live_server(home) as url:
        env = {**os.environ, "DATALABS_API_URL": url, "DATALABS_TOKEN": token, "HOME": str(tmp_path)}

        def cli(*args, ok=True):
            r = subprocess.run(
                [DATALABS, "apps", *args], env=env, capture_output=True, text=True, timeout=300
            )
            assert (r.returncode == 0) == ok, r.stdout + r.stderr
            return r.stdout + r.stderr

        out = cli("create", "tiny", "--dir", str(src))
        assert "dl-tinypkg==1.0" in out and "tiny 0.1.0-0 built" in out
        assert "BUILD SUCCEEDED" in cli("logs", "tiny")
        assert "users: bob" in cli("share", "tiny", "--user", "bob")
        assert "submitted" in cli("submit", "tiny")
        assert "published: -" in cli("ls", "--mine")  # under review, not published yet
        assert "still published: none" in cli("unpublish", "tiny")  # withdraws the submission
        assert "neither published nor waiting for review" in cli("unpublish", "tiny", ok=False)
        cli("export", "tiny", "-o", str(tmp_path / "tiny.zip"))
        assert "imported tiny-copy with 1 version" in cli(
            "import", str(tmp_path / "tiny.zip"), "--name", "tiny-copy"
        )
        assert "no app 'nothing'" in cli("logs", "nothing", ok=False)
