"""Runs end to end through the API with the in-process worker and real cwltool (sandboxed tools)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from tests.pipelines.conftest import FAIL, HELLO, register, sse_events, wait_run


def test_hello_world_succeeds_with_its_output_in_the_workspace(people, settings):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    r = ada.post("/api/v1/pipelines/hello/runs", json={"inputs": {"text": "Ada"}})
    assert r.status_code == 202, r.text
    run = wait_run(ada, r.json()["id"])
    assert run["state"] == "succeeded", run
    folder = f"me/pipelines/hello/{run['id']}"
    assert run["output_dir"] == folder
    assert run["outputs"]["banner"]["location"] == f"{folder}/banner.txt"
    on_disk = settings.home / "workspaces/users/ada/pipelines/hello" / run["id"] / "banner.txt"
    assert on_disk.read_text() == "== Ada ==\n"
    got = ada.get(f"/api/v1/workspaces/me/files/pipelines/hello/{run['id']}/banner.txt")
    assert got.text == "== Ada ==\n"
    logs = ada.get(f"/api/v1/runs/{run['id']}/logs").text
    assert "made the banner" in logs and "succeeded" in logs
    outputs = ada.get(f"/api/v1/runs/{run['id']}/outputs").json()
    assert outputs["outputs"]["banner"]["size"] == 10


def test_failing_tool_fails_the_run_with_stderr_and_notifies_once(people, smtp, webhook):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "calibrate", FAIL)
    notify = {"on": ["failure"], "email": True, "webhooks": [webhook.url]}
    r = ada.post("/api/v1/pipelines/calibrate/runs", json={"inputs": {"station": "KOUR"}, "notify": notify})
    run = wait_run(ada, r.json()["id"])
    assert run["state"] == "failed"
    assert "calibration table missing for KOUR" in run["reason"]
    stream = ada.get(f"/api/v1/runs/{run['id']}/logs", params={"follow": True})
    events = sse_events(stream.text)
    assert "calibration table missing for KOUR" in "".join(e["text"] for k, e in events if k == "log")
    assert events[-1] == ("end", {"state": "failed", "reason": run["reason"]})
    deadline = time.monotonic() + 10
    while (len(smtp.messages) < 1 or len(webhook.calls) < 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # anything duplicated would have arrived by now
    assert len(smtp.messages) == 1 and len(webhook.calls) == 1
    mail = smtp.messages[0]
    assert mail["To"] == "ada@example.org" and run["id"] in mail["Subject"] and "failed" in mail["Subject"]
    call = webhook.calls[0]
    stamp, body = call["headers"]["X-Datalabs-Timestamp"], call["body"]
    expected = hmac.new(b"hook-secret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert call["headers"]["X-Datalabs-Signature"] == f"sha256={expected}"
    assert json.loads(body)["run"]["id"] == run["id"] and json.loads(body)["event"] == "run.failed"
    link = json.loads(body)["run"]["url"]
    assert (
        link.endswith(f"/runs/{run['id']}") and f"/runs/{run['id']}" in mail.get_payload(decode=True).decode()
    )
    page = ada.get(urlsplit(link).path)
    assert page.status_code == 200 and run["id"] in page.text  # the link leads to the run's page


def test_success_notifies_only_when_asked(people, smtp, webhook):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    quiet = ada.post("/api/v1/pipelines/hello/runs", json={"notify": {"webhooks": [webhook.url]}}).json()
    loud = ada.post(
        "/api/v1/pipelines/hello/runs", json={"notify": {"on": ["success"], "webhooks": [webhook.url]}}
    ).json()
    assert wait_run(ada, quiet["id"])["state"] == wait_run(ada, loud["id"])["state"] == "succeeded"
    time.sleep(0.5)
    assert [json.loads(c["body"])["run"]["id"] for c in webhook.calls] == [loud["id"]]
    assert smtp.messages == []


def test_cancel_a_running_run(people):
    from tests.pipelines.conftest import SLEEP

    people.user("ada")
    ada = people.login("ada")
    register(ada, "sleepy", SLEEP)
    run = ada.post("/api/v1/pipelines/sleepy/runs", json={"inputs": {"seconds": 60}}).json()
    deadline = time.monotonic() + 20
    while "started" not in ada.get(f"/api/v1/runs/{run['id']}/logs").text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ada.post(f"/api/v1/runs/{run['id']}/cancel", json={}).json()["cancel_requested"]
    done = wait_run(ada, run["id"], timeout=20)
    assert done["state"] == "cancelled" and done["outputs"] is None


def test_timeout_fails_the_run(people):
    from tests.pipelines.conftest import SLEEP

    people.user("ada")
    ada = people.login("ada")
    register(ada, "sleepy", SLEEP)
    run = ada.post("/api/v1/pipelines/sleepy/runs", json={"inputs": {"seconds": 60}, "timeout": 1}).json()
    done = wait_run(ada, run["id"], timeout=20)
    assert done["state"] == "failed" and "timed out after 1 s" in done["reason"]


def test_cancel_a_queued_run_is_immediate(people, app):
    app.state.pipeline_worker.stop()  # nothing claims: the run stays queued
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    run = ada.post("/api/v1/pipelines/hello/runs", json={}).json()
    done = ada.post(f"/api/v1/runs/{run['id']}/cancel", json={}).json()
    assert done["state"] == "cancelled"


def test_outputs_over_the_workspace_quota_fail_the_run_and_write_nothing(people, settings):
    settings.workspaces.quotas["user:ada"] = 5  # the banner is 10 bytes
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    run = wait_run(
        ada, ada.post("/api/v1/pipelines/hello/runs", json={"inputs": {"text": "Ada"}}).json()["id"]
    )
    assert run["state"] == "failed" and run["attempts"] == 1, run
    assert (
        "the output folder (10 bytes) does not fit" in run["reason"]
        and "quota leaves 5 bytes free" in run["reason"]
    )
    assert run["outputs"] is None and not run["output_dir"]
    assert not (settings.home / "workspaces/users/ada/pipelines/hello" / run["id"]).exists()
    assert "nothing was written to the workspace" in ada.get(f"/api/v1/runs/{run['id']}/logs").text


def test_without_a_mail_server_e_mail_is_refused_up_front_and_the_form_says_so(people, app, webhook):
    """Accepting an address and never sending to it is worse than saying no (issue 15)."""
    app.state.settings.pipelines.smtp_host = ""
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    for email in (True, ["ops@example.org"]):
        r = ada.post(
            "/api/v1/pipelines/hello/runs", json={"inputs": {"text": "x"}, "notify": {"email": email}}
        )
        assert r.status_code == 422 and "no mail server" in r.text, r.text
    r = ada.post("/api/v1/pipelines/hello/schedules", json={"cron": "0 3 * * *", "notify": {"email": True}})
    assert r.status_code == 422 and "no mail server" in r.text, r.text
    webhook_only = {"inputs": {"text": "x"}, "notify": {"webhooks": [webhook.url]}}
    assert ada.post("/api/v1/pipelines/hello/runs", json=webhook_only).status_code == 202
    form = ada.get("/pipelines/hello/launch").text
    assert "E-mail is not available" in form
    assert 'id="email_to"' in form and form.split('id="email_to"', 1)[1].split(">", 1)[0].endswith("disabled")
