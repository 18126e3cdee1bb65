"""`datalabs pipelines triggers ls|add|pause|resume|rm|test` against a live platform, and a webhook signed
as its documentation says (pipelines/trigger_hooks.py), with the secret the CLI printed once."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import httpx
import pytest

from tests.cli.test_cli import run
from tests.live import live_server
from tests.pipelines.conftest import HELLO

pytestmark = pytest.mark.slow


def test_triggers_from_the_cli(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw")
    token = run(home, "admin", "create-token", "ada").stdout.strip()
    with live_server(home, {"DATALABS_PIPELINES__WORKER": "false"}) as url:
        env = {"DATALABS_API_URL": url, "DATALABS_TOKEN": token, "DATALABS_CREDENTIALS": str(tmp_path / "c")}
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        assert api.post("/api/v1/pipelines", json={"name": "hello", "cwl": HELLO}).status_code == 201
        added = run(
            home, "pipelines", "triggers", "add", "hello", "webhook", "--name", "station", env=env
        ).stdout
        trigger_id = int(re.search(r"trigger (\d+)", added).group(1))
        secret = re.search(r"secret \(shown once\): (\S+)", added).group(1)
        hook = re.search(r"hook URL: (\S+)", added).group(1)
        assert hook == f"{url}/api/v1/triggers/{trigger_id}/hook"
        listed = run(home, "pipelines", "triggers", "ls", "hello", env=env).stdout
        assert "station" in listed and "active" in listed and secret not in listed
        # Signed exactly as documented, by hand.
        body = json.dumps({"inputs": {"text": "from the station"}}).encode()
        ts = str(int(time.time()))
        mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {"X-Datalabs-Timestamp": ts, "X-Datalabs-Signature": f"sha256={mac}"}
        r = httpx.post(hook, content=body, headers=headers)
        assert r.status_code == 202, r.text
        assert api.get(f"/api/v1/runs/{r.json()['run_id']}").json()["inputs"] == {"text": "from the station"}
        assert "paused" in run(home, "pipelines", "triggers", "pause", str(trigger_id), env=env).stdout
        ts = str(int(time.time()) + 1)
        mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {"X-Datalabs-Timestamp": ts, "X-Datalabs-Signature": f"sha256={mac}"}
        assert httpx.post(hook, content=body, headers=headers).status_code == 409
        assert "active" in run(home, "pipelines", "triggers", "resume", str(trigger_id), env=env).stdout
        tested = run(
            home, "pipelines", "triggers", "test", str(trigger_id), "-i", "text=tested", env=env
        ).stdout
        run_id = re.search(r"run (\w+) queued", tested).group(1)
        shown = api.get(f"/api/v1/runs/{run_id}").json()
        assert shown["inputs"] == {"text": "tested"} and shown["triggered_by"]["test"] == "ada"
        refused = run(
            home, "pipelines", "triggers", "test", str(trigger_id), "-i", "nope=1", env=env, check=False
        )
        assert refused.returncode != 0 and "nope" in refused.stdout + refused.stderr
        args = ("pipelines", "triggers", "add", "hello", "run_finished", "--after", "missing")
        bad = run(home, *args, env=env, check=False)
        assert bad.returncode != 0 and "missing" in bad.stdout + bad.stderr
        run(home, "pipelines", "triggers", "rm", str(trigger_id), env=env)
        assert run(home, "pipelines", "triggers", "ls", "hello", "--json", env=env).stdout.strip() == "[]"
        api.close()
