"""`datalabs labs ...` against a live platform starting a real (sandboxed) minimal web-app lab."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli.test_cli import run
from tests.labs.test_restart import DEFINITION, LABAPP
from tests.live import live_server

pytestmark = pytest.mark.slow


def test_launch_ls_logs_stop_rm(tmp_path):
    home, catalogue = tmp_path / "home", tmp_path / "defs"
    (catalogue / "mini").mkdir(parents=True)
    (catalogue / "mini" / "datalab-meta.yml").write_text(DEFINITION)
    shutil.copy(LABAPP, catalogue / "mini" / "labapp.py")
    home.mkdir()
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw")
    token = run(home, "admin", "create-token", "ada").stdout.strip()
    with live_server(home, {"DATALABS_CATALOGUE__DIRS": f'["{catalogue}"]'}) as url:
        env = {
            "DATALABS_API_URL": url,
            "DATALABS_TOKEN": token,
            "DATALABS_CREDENTIALS": str(tmp_path / "none"),
        }
        launched = run(home, "labs", "launch", "mini", "--memory", "1G", env=env).stdout
        assert "ready: " in launched
        (lab,) = json.loads(run(home, "labs", "ls", "--json", env=env).stdout)
        assert lab["state"] == "running" and lab["resources"]["memory"] == "1.0 GB"
        port = url.rsplit(":", 1)[1]
        # the lab's own origin
        assert f"ready: http://{lab['id']}.lab.localhost:{port}/datalabs/{lab['id']}/" in launched
        assert "labapp serving" in run(home, "labs", "logs", lab["id"], env=env).stdout
        too_big = run(home, "labs", "launch", "mini", "--cpu", "64", env=env, check=False)
        assert too_big.returncode == 1 and "maximum" in too_big.stderr
        assert "stopped" in run(home, "labs", "stop", lab["id"], env=env).stdout
        # Restarted: the same sandboxed lab (same id and address) serves again; its log goes on.
        restarted = run(home, "labs", "restart", lab["id"], env=env).stdout
        assert f"ready: http://{lab['id']}.lab.localhost:{port}/datalabs/{lab['id']}/" in restarted
        (again,) = json.loads(run(home, "labs", "ls", "--json", env=env).stdout)
        assert again["state"] == "running" and again["resources"]["memory"] == "1.0 GB"
        log = run(home, "labs", "logs", lab["id"], env=env).stdout
        assert log.count("labapp serving") == 2 and "---- restarted at" in log
        refused = run(home, "labs", "restart", lab["id"], env=env, check=False)
        assert refused.returncode == 1 and "only a stopped or failed lab" in refused.stderr
        assert "stopped" in run(home, "labs", "stop", lab["id"], env=env).stdout
        assert "destroyed" in run(home, "labs", "rm", lab["id"], env=env).stdout
        missing = run(home, "labs", "logs", lab["id"], env=env, check=False)
        assert missing.returncode == 1 and "no lab" in missing.stderr
