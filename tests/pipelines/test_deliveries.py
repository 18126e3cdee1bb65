"""What a run's end tells its owner, with the real worker, cwltool, a real SMTP server (aiosmtpd) and a
real HTTP receiver: the notice behind the bell, each e-mail and webhook recorded and shown on the run
page as delivered or failed with the reason, each send carrying its delivery's key, sent again with the
same key when its sender stopped, and never again once recorded sent. Across real processes killed with
SIGKILL: test_exactly_once.py."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from datalabs.db.models import Notice, PipelineRun, RunNotification
from datalabs.db.types import utcnow
from datalabs.pipelines import deliveries, notify
from tests.live import free_port
from tests.pipelines.conftest import FAIL, HELLO, register, wait_run


def _wait_settled(app, run_id: str, count: int) -> list[RunNotification]:
    """The run's delivery records once `count` of them have an outcome (the worker sends right after
    it records the run's end, so the API may answer before)."""
    deadline = time.monotonic() + 30
    while True:
        with app.state.sessions() as db:
            rows = db.scalars(select(RunNotification).where(RunNotification.run_id == run_id)).all()
        if len([r for r in rows if r.state != "sending"]) >= count:
            return sorted(rows, key=lambda r: r.id)
        assert time.monotonic() < deadline, [(r.channel, r.state) for r in rows]
        time.sleep(0.05)


def _rows(page: str) -> dict[str, tuple[str, str]]:
    """{channel: (state, row text)} of the run page's Notifications table."""
    found = re.findall(r'<tr data-channel="(\w+)" data-state="(\w+)">(.*?)</tr>', page, re.S)
    return {channel: (state, re.sub(r"\s+", " ", text)) for channel, state, text in found}


def test_an_e_mail_arrives_the_run_page_says_delivered_and_the_bell_shows_the_notice(people, app, smtp):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    notify = {"on": ["success"], "email": True}
    run = ada.post("/api/v1/pipelines/hello/runs", json={"inputs": {"text": "x"}, "notify": notify}).json()
    assert wait_run(ada, run["id"])["state"] == "succeeded"
    [record] = _wait_settled(app, run["id"], 1)
    assert (record.channel, record.state, record.target) == ("email", "delivered", "ada@example.org")
    assert len(smtp.messages) == 1 and smtp.messages[0]["To"] == "ada@example.org"

    page = ada.get(f"/runs/{run['id']}").text
    state, text = _rows(page)["email"]
    assert state == "delivered" and "ada@example.org" in text and "Delivered" in text
    assert 'data-unread="1"' in page and "1 unread" in page  # the header's bell

    listed = ada.get("/api/v1/notifications").json()
    assert listed["unread"] == 1 and listed["total"] == 1
    [notice] = listed["items"]
    assert (
        notice["link"] == f"/runs/{run['id']}" and "succeeded" in notice["text"] and notice["read_at"] is None
    )
    # Following it from the notification centre marks it read and leads to the run.
    r = ada.get(f"/notifications/{notice['id']}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/runs/{run['id']}"
    assert ada.get("/api/v1/notifications").json()["unread"] == 0
    assert 'data-unread="0"' in ada.get(f"/runs/{run['id']}").text


class Refusing:
    """An SMTP server that refuses every recipient."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # aiosmtpd hook
        return "550 5.1.1 mailbox unavailable"


@pytest.fixture
def refusing_smtp(app):
    from aiosmtpd.controller import Controller

    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    app.state.settings.pipelines.smtp_port = controller.port  # the worker reads the same settings
    yield controller
    controller.stop()


def test_a_refused_e_mail_shows_failed_with_the_servers_reason(people, app, refusing_smtp, smtp):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "calibrate", FAIL)
    notify = {"on": ["failure"], "email": True}
    run = ada.post(
        "/api/v1/pipelines/calibrate/runs", json={"inputs": {"station": "X"}, "notify": notify}
    ).json()
    assert wait_run(ada, run["id"])["state"] == "failed"
    [record] = _wait_settled(app, run["id"], 1)
    assert record.state == "failed"
    assert "refused" in record.detail and "550" in record.detail and "mailbox unavailable" in record.detail
    state, text = _rows(ada.get(f"/runs/{run['id']}").text)["email"]
    assert state == "failed" and "Failed" in text and "mailbox unavailable" in text
    assert smtp.messages == []
    # The owner still hears of it in the platform (they asked to be told of failures).
    assert "failed" in ada.get("/api/v1/notifications").json()["items"][0]["text"]


def test_a_webhook_to_a_refusing_address_fails_while_the_other_is_delivered(people, app, webhook):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    closed = f"http://127.0.0.1:{free_port()}/hook?token=s3cret-token"  # nothing listens there
    good = webhook.url + "?token=other-s3cret"
    notify = {"on": ["success"], "webhooks": [closed, good]}
    run = ada.post("/api/v1/pipelines/hello/runs", json={"inputs": {"text": "x"}, "notify": notify}).json()
    assert wait_run(ada, run["id"])["state"] == "succeeded"
    refused, delivered = _wait_settled(app, run["id"], 2)
    assert (refused.state, delivered.state) == ("failed", "delivered")
    assert refused.detail.startswith("could not connect") and "refused" in refused.detail.lower()
    assert len(webhook.calls) == 1
    page = ada.get(f"/runs/{run['id']}").text
    states = re.findall(r'<tr data-channel="webhook" data-state="(\w+)">', page)
    assert states == ["failed", "delivered"]
    # The page names the host, never the path or query, which may hold the receiver's secret.
    assert urlsplit_host(closed) in page and urlsplit_host(good) in page
    assert "s3cret" not in page


def urlsplit_host(url: str) -> str:
    return url.split("/")[2]


def _finished_run(people, app, notify: dict, state: str = "failed") -> str:
    """A run of ada's that ended, without the worker (stopped): the deliveries are driven by hand."""
    app.state.pipeline_worker.stop()
    people.user("ada")
    ada = people.login("ada")
    register(ada, "calibrate", FAIL)
    run = ada.post("/api/v1/pipelines/calibrate/runs", json={"inputs": {"station": "X"}, "notify": notify})
    assert run.status_code == 202, run.text
    with app.state.sessions() as db:
        db.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run.json()["id"])
            .values(state=state, reason="calibration table missing", ended_at=utcnow())
        )
        db.commit()
    return run.json()["id"]


def _expire(sessions, run_id: str) -> None:
    """The hold of the run's deliveries runs out (their sender stopped long ago)."""
    with sessions() as db:
        db.execute(
            update(RunNotification)
            .where(RunNotification.run_id == run_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
        db.commit()


def test_decided_once_and_a_sender_that_stopped_is_replaced_with_the_same_key_never_after_sent(
    people, app, smtp, webhook
):
    run_id = _finished_run(people, app, {"on": ["failure"], "email": True, "webhooks": [webhook.url]})
    sessions, settings = app.state.sessions, app.state.settings
    ids = deliveries.decide(sessions, run_id, sender="first", held_for=60)
    assert len(ids) == 2
    assert deliveries.decide(sessions, run_id, sender="other") == []  # a second worker, or reaped again
    with sessions() as db:
        assert [(r.channel, r.state) for r in deliveries.for_run(db, run_id)] == [
            ("email", "sending"),
            ("webhook", "sending"),
        ]
        assert len(db.scalars(select(Notice)).all()) == 1  # the notice was written with the decision
        keys = [r.key for r in db.scalars(select(RunNotification).order_by(RunNotification.id))]
    assert keys == [
        deliveries.key_for(run_id, "email", "ada@example.org"),
        deliveries.key_for(run_id, "webhook", webhook.url),
    ]
    # The first sender dies here, before sending. While its hold lasts, nobody else sends.
    app.state.pipeline_worker._notify(run_id)
    assert deliveries.resume(settings, sessions, "heir") == 0
    assert smtp.messages == [] and webhook.calls == []
    # Once it ran out, the next maintenance pass sends each, once, with its key.
    _expire(sessions, run_id)
    assert deliveries.resume(settings, sessions, "heir") == 2
    assert deliveries.resume(settings, sessions, "another") == 0
    [mail], [call] = smtp.messages, webhook.calls
    assert mail["Message-ID"] == f"<{keys[0]}@localhost>"
    assert (
        call["headers"]["X-Datalabs-Delivery"] == keys[1] and json.loads(call["body"])["delivery"] == keys[1]
    )
    with sessions() as db:
        rows = db.scalars(select(RunNotification).order_by(RunNotification.id)).all()
        assert [(r.state, r.sender, r.attempts) for r in rows] == [("delivered", "heir", 2)] * 2
    # The first sender comes back and goes on: what is recorded sent is never sent again.
    deliveries.deliver(settings, sessions, run_id, ids, sender="first")
    deliveries.deliver(settings, sessions, run_id, ids)
    _expire(sessions, run_id)
    assert deliveries.resume(settings, sessions, "heir") == 0
    assert len(smtp.messages) == 1 and len(webhook.calls) == 1


def test_a_record_made_before_keys_stays_outcome_unknown_and_is_never_sent(people, app, smtp):
    run_id = _finished_run(people, app, {"on": ["failure"], "email": True})
    sessions = app.state.sessions
    with sessions() as db:
        db.add(
            RunNotification(
                run_id=run_id,
                channel="email",
                target="ada@example.org",
                state="sending",
                created_at=utcnow() - timedelta(hours=1),
            )
        )
        db.commit()
    assert deliveries.resume(app.state.settings, sessions, "heir") == 0
    with sessions() as db:
        [shown] = deliveries.for_run(db, run_id)
    assert shown.state == "unknown" and "may or may not" in shown.detail and smtp.messages == []


def test_a_delivery_whose_sends_kill_their_workers_is_given_up(people, app, webhook):
    run_id = _finished_run(people, app, {"on": ["failure"], "webhooks": [webhook.url]})
    sessions, settings = app.state.sessions, app.state.settings
    [record_id] = deliveries.decide(sessions, run_id, sender="w0")
    for n in range(2, deliveries.MAX_SENDS + 1):
        _expire(sessions, run_id)
        with sessions() as db:  # the heir takes it over, and dies before sending too
            db.execute(update(RunNotification).values(attempts=n, sender=f"w{n}"))
            db.commit()
    _expire(sessions, run_id)
    assert deliveries.resume(settings, sessions, "heir") == 0
    with sessions() as db:
        record = db.get(RunNotification, record_id)
        assert (record.state, record.attempts) == ("failed", deliveries.MAX_SENDS)
        assert f"stopped {deliveries.MAX_SENDS} times while sending" in record.detail
    assert webhook.calls == []


class Gated:
    """A webhook receiver that answers each call only once the test opens its gate."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.arrived = threading.Event()
        self.gate = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append({"headers": dict(self.headers), "body": body})
                outer.arrived.set()
                outer.gate.wait(60)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gated():
    r = Gated()
    yield r
    r.gate.set()
    r.server.shutdown()


def test_a_slow_receiver_is_not_sent_a_second_copy_while_its_sender_waits(people, app, gated):
    run_id = _finished_run(people, app, {"on": ["failure"], "webhooks": [gated.url]})
    sessions, settings = app.state.sessions, app.state.settings
    ids = deliveries.decide(sessions, run_id, sender="A", held_for=deliveries.hold(settings))
    sender = threading.Thread(target=deliveries.deliver, args=(settings, sessions, run_id, ids), daemon=True)
    sender.start()
    assert gated.arrived.wait(30)
    assert deliveries.resume(settings, sessions, "B") == 0  # A holds it while it waits for the answer
    gated.gate.set()
    sender.join(30)
    assert not sender.is_alive() and len(gated.calls) == 1
    with sessions() as db:
        [record] = db.scalars(select(RunNotification)).all()
    assert (record.state, record.sender, record.attempts) == ("delivered", "A", 1)


def test_a_receiver_that_never_answers_is_recorded_failed_after_the_timeout(people, app, gated, webhook):
    run_id = _finished_run(people, app, {"on": ["failure"], "webhooks": [gated.url, webhook.url]})
    settings = app.state.settings
    settings.pipelines.webhook_timeout = 0.5
    ids = deliveries.decide(app.state.sessions, run_id, sender="A")
    deliveries.deliver(settings, app.state.sessions, run_id, ids, sender="A")  # the gate never opens
    with app.state.sessions() as db:
        hung, answered = deliveries.for_run(db, run_id)
    assert hung.state == "failed" and hung.detail == "no answer in time (it may still have arrived)"
    assert answered.state == "delivered" and len(webhook.calls) == 1  # the next one was still sent


def test_a_replayed_or_altered_delivery_is_told_apart_by_its_signed_key(people, app, webhook):
    twice = [webhook.url, webhook.url]  # the same receiver listed twice: one delivery
    run_id = _finished_run(people, app, {"on": ["failure"], "webhooks": twice})
    ids = deliveries.decide(app.state.sessions, run_id, sender="A")
    assert len(ids) == 1
    deliveries.deliver(app.state.settings, app.state.sessions, run_id, ids)
    [call] = webhook.calls
    headers, body = call["headers"], call["body"]
    stamp, key = headers["X-Datalabs-Timestamp"], headers["X-Datalabs-Delivery"]
    assert headers["X-Datalabs-Signature"] == notify.sign("hook-secret", stamp, body)
    # A replay is the same signed body: same key, which the receiver has seen.
    assert json.loads(body)["delivery"] == key
    # A replay with the key changed (to pass a receiver's dedupe) no longer matches its signature.
    altered = body.replace(key.encode(), b"0" * len(key))
    assert altered != body and headers["X-Datalabs-Signature"] != notify.sign("hook-secret", stamp, altered)


@pytest.mark.parametrize(
    ("mail_from", "domain"),
    [
        ("datalabs@localhost", "localhost"),
        ("Datalabs <ops@archive.example.org>", "archive.example.org"),
        ("no-at-sign", "datalabs.invalid"),
        ("x@evil>\r\nBcc: y@z", "evil"),  # the address's domain only: never a header break
        ("x@", "datalabs.invalid"),
    ],
)
def test_message_ids_are_the_delivery_key_at_the_senders_domain(mail_from, domain):
    assert notify.message_id("k" * 32, mail_from) == f"<{'k' * 32}@{domain}>"


def test_a_webhook_refused_by_the_network_rule_at_sending_time_is_recorded_failed(people, app, webhook):
    secret_url = webhook.url + "?token=s3cret-token"
    run_id = _finished_run(people, app, {"on": ["failure"], "webhooks": [secret_url]})
    app.state.settings.pipelines.webhook_allow_networks = []  # the operator withdrew the permission
    ids = deliveries.decide(app.state.sessions, run_id)
    deliveries.deliver(app.state.settings, app.state.sessions, run_id, ids)
    with app.state.sessions() as db:
        [shown] = deliveries.for_run(db, run_id)
    assert shown.state == "failed" and "internal address 127.0.0.1" in shown.detail
    assert webhook.calls == []
    # The refusal names the URL; what is recorded and shown names only its host.
    assert "s3cret" not in shown.detail and urlsplit_host(secret_url) in shown.detail
    page = people.login("ada").get(f"/runs/{run_id}").text
    assert "internal address 127.0.0.1" in page and "s3cret" not in page


def test_e_mail_asked_for_an_account_without_an_address_is_recorded_failed(people, app, smtp):
    run_id = _finished_run(people, app, {"on": ["failure"], "email": True})
    with app.state.sessions() as db:
        db.get(PipelineRun, run_id).owner.email = ""
        db.commit()
    assert deliveries.decide(app.state.sessions, run_id) == []  # nothing to send
    with app.state.sessions() as db:
        [shown] = deliveries.for_run(db, run_id)
    assert shown.state == "failed" and "no e-mail address" in shown.detail and smtp.messages == []


def test_a_run_whose_worker_died_is_told_when_it_is_reaped(people, app):
    run_id = _finished_run(people, app, {}, state="running")
    with app.state.sessions() as db:
        db.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run_id)
            .values(worker="gone:1", attempts=2, max_attempts=2, lease_until=utcnow() - timedelta(minutes=1))
            .values(created_at=utcnow() - timedelta(minutes=5))  # queued, ran, then its lease ran out
        )
        db.commit()
    app.state.pipeline_worker.reap()
    notices = people.login("ada").get("/api/v1/notifications").json()["items"]
    assert len(notices) == 1 and "failed" in notices[0]["text"] and "stopped answering" in notices[0]["text"]


def _run(state: str, *, minutes: float, notify: dict | None = None, scheduled: bool = False) -> PipelineRun:
    start = utcnow()
    return PipelineRun(
        state=state,
        notify=notify or {},
        schedule_id=7 if scheduled else None,
        created_at=start,
        ended_at=start + timedelta(minutes=minutes),
    )


@pytest.mark.parametrize(
    ("run", "told"),
    [
        (_run("succeeded", minutes=0.1), False),  # watched it finish
        (_run("failed", minutes=0.1), False),  # the failure is on the page its owner looks at
        (_run("succeeded", minutes=5), True),  # a long run: its owner moved on
        (_run("failed", minutes=5), True),
        (_run("cancelled", minutes=5), False),  # whoever cancelled it knows
        (_run("succeeded", minutes=0.1, notify={"on": ["success"]}), True),  # asked to be told
        (_run("failed", minutes=0.1, notify={"on": ["failure"]}), True),
        (_run("succeeded", minutes=0.1, notify={"on": ["failure"]}), False),
        (_run("succeeded", minutes=5, scheduled=True), False),  # a schedule's successes would bury the bell
        (_run("failed", minutes=0.1, scheduled=True), True),
        (_run("running", minutes=5), False),
    ],
)
def test_which_runs_leave_a_notice(run, told):
    assert deliveries.notice_wanted(run) is told
