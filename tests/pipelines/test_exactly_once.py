"""Three pipeline replicas, each a real `datalabs worker` process (tests/pipelines/replica.py) on one
database (SQLite and PostgreSQL): a schedule fires exactly once per due time and each of its runs is
executed once; a run's notifications reach a receiver that drops repeated keys exactly once, though the
replica sending them is killed with SIGKILL after deciding them and before recording them sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from datalabs.db.engine import transaction
from datalabs.db.models import Notice, PipelineRun, RunNotification, ScheduleFire
from datalabs.pipelines import notify, queue, registry, runs, schedules
from datalabs.pipelines.documents import load_text
from tests.pipelines.conftest import HELLO

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)  # in the future: a replica on the real clock fires nothing
LEASE = 6  # the worker lease (s): heartbeats every 2 s, maintenance passes every 2 s


@pytest.fixture
def idle_app(app, client):
    app.state.pipeline_worker.stop()  # the replicas do the work
    return app


class Replicas:
    def __init__(self, settings, tmp_path: Path) -> None:
        p = settings.pipelines
        self.tmp = tmp_path
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATALABS_HOME": str(settings.home),
            "DATALABS_DB__URL": settings.database_url,
            "DATALABS_AUTH__SECRET_KEY": "test-secret",
            "DATALABS_PIPELINES__LEASE": str(LEASE),
            "DATALABS_PIPELINES__POLL_INTERVAL": "0.2",
            "DATALABS_PIPELINES__SCHEDULER_INTERVAL": "0.1",
            "DATALABS_PIPELINES__SMTP_HOST": p.smtp_host,
            "DATALABS_PIPELINES__SMTP_PORT": str(p.smtp_port),
            "DATALABS_PIPELINES__SMTP_TIMEOUT": "2",
            "DATALABS_PIPELINES__WEBHOOK_SECRET": p.webhook_secret,
            "DATALABS_PIPELINES__WEBHOOK_TIMEOUT": "2",
            "DATALABS_PIPELINES__WEBHOOK_ALLOW_NETWORKS": json.dumps(p.webhook_allow_networks),
        }
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *extra: str) -> subprocess.Popen:
        log = open(self.tmp / f"replica-{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.pipelines.replica", "--name", name, *extra],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"replica-{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def replicas(idle_app, settings, tmp_path):
    r = Replicas(settings, tmp_path)
    yield r
    r.stop()


def _pipeline(app, owner: str):
    from datalabs.accounts import service

    with transaction(app.state.sessions) as db:
        principal = runs.principal_of(db, service.get_user(db, owner))
        registry.create(
            db,
            principal,
            name="hello",
            details=registry.Details(),
            system=False,
            version="1",
            notes="",
            document=load_text("hello.cwl", HELLO),
            source=HELLO,
        )


def _wait(what: str, check, timeout: float, replicas: Replicas | None = None):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            logs = {n: replicas.log(n) for n in replicas.procs} if replicas else {}
            raise AssertionError(f"timed out waiting for {what}; replica logs: {logs}")
        time.sleep(0.1)
    return result


def _set_clock(clock: Path, moment: datetime) -> None:
    tmp = clock.with_suffix(".tmp")
    tmp.write_text(moment.isoformat())
    os.replace(tmp, clock)


@pytest.mark.slow
def test_a_schedule_fires_10_times_across_3_replicas_each_run_executed_once(
    idle_app, people, settings, replicas, tmp_path
):
    from datalabs.accounts import service

    people.user("ada")
    _pipeline(idle_app, "ada")
    sessions = idle_app.state.sessions
    with transaction(sessions) as db:
        principal = runs.principal_of(db, service.get_user(db, "ada"))
        pipeline = registry.get_visible(db, principal, "hello")
        sid = schedules.create(
            db, settings, principal, pipeline, cron="* * * * *", inputs={"text": "tick"}, now=T0
        ).id
    clock = tmp_path / "clock"
    _set_clock(clock, T0)
    names = ("A", "B", "C")
    for name in names:
        replicas.start(name, "--clock", str(clock))

    def seen(name: str) -> str:
        path = clock.with_name(f"clock.{name}")
        return path.read_text() if path.exists() else ""

    def fires() -> int:
        with sessions() as db:
            return db.scalar(
                select(func.count()).select_from(ScheduleFire).where(ScheduleFire.schedule_id == sid)
            )

    for minute in range(1, 11):
        moment = T0 + timedelta(minutes=minute, seconds=1)
        _set_clock(clock, moment)
        # Every replica's scheduler reads this time (so all three try to fire this due time)...
        _wait(
            f"all replicas at {moment}",
            lambda m=moment: all(seen(n) == m.isoformat() for n in names),
            120,
            replicas,
        )
        # ... and one of them fired it before the clock moves on (else the next tick would skip it).
        _wait(f"fire {minute}", lambda k=minute: fires() >= k, 60, replicas)

    def all_ended() -> bool:
        with sessions() as db:
            return not db.scalar(
                select(func.count()).select_from(PipelineRun).where(PipelineRun.state.not_in(queue.FINAL))
            )

    _wait("the runs to end", all_ended, 300, replicas)
    time.sleep(2 * LEASE / 3)  # one more maintenance pass of each replica at the last time: nothing fires
    replicas.stop()
    with sessions() as db:
        fired = db.scalars(select(ScheduleFire).where(ScheduleFire.schedule_id == sid)).all()
        made = db.scalars(select(PipelineRun)).all()
    assert sorted(f.due_at.astimezone(UTC) for f in fired) == [
        T0 + timedelta(minutes=m) for m in range(1, 11)
    ]
    assert not any(f.skipped for f in fired)
    assert sorted(f.run_id for f in fired) == sorted(r.id for r in made) and len(made) == 10
    assert {r.schedule_id for r in made} == {sid}
    assert {(r.state, r.attempts) for r in made} == {("succeeded", 1)}, [(r.state, r.reason) for r in made]
    assert {r.worker for r in made} <= set(names)
    for r in made:
        log = runs.log_path(settings, r.id).read_text()
        assert log.count("=== attempt") == 1, log
        out = settings.home / "workspaces/users/ada/pipelines/hello" / r.id / "banner.txt"
        assert out.read_text() == "== tick ==\n"


def _deliveries(sessions, run_id: str) -> list[RunNotification]:
    with sessions() as db:
        return list(
            db.scalars(
                select(RunNotification).where(RunNotification.run_id == run_id).order_by(RunNotification.id)
            )
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stall", "sent_before_kill"),
    [
        # decided, nothing sent yet
        (("--stall-before-send", "1"), {"email": 0, "webhook": 0}),
        # the e-mail sent and recorded; the webhook sent, not yet recorded
        (("--stall-after-send", "2"), {"email": 1, "webhook": 1}),
    ],
    ids=["before-send", "sent-not-recorded"],
)
def test_notifications_reach_a_deduping_receiver_once_across_a_sigkill_of_their_sender(
    idle_app, people, settings, replicas, tmp_path, smtp, webhook, stall, sent_before_kill
):
    from datalabs.accounts import service

    people.user("ada")
    _pipeline(idle_app, "ada")
    sessions = idle_app.state.sessions
    with transaction(sessions) as db:
        principal = runs.principal_of(db, service.get_user(db, "ada"))
        pipeline = registry.get_visible(db, principal, "hello")
        notify_ = {"on": ["success"], "email": True, "webhooks": [webhook.url]}
        run_id = runs.submit(db, settings, principal, pipeline, inputs={"text": "x"}, notify=notify_).id
    marker = tmp_path / "stalled"
    doomed = replicas.start("doomed", *stall, "--marker", str(marker))
    _wait("the doomed replica to stall", lambda: marker.exists() and marker.read_text(), 180, replicas)
    os.kill(doomed.pid, signal.SIGKILL)
    assert doomed.wait(30) == -signal.SIGKILL

    decided = _deliveries(sessions, run_id)
    keys = {r.channel: r.key for r in decided}
    assert [r.channel for r in decided] == ["email", "webhook"]
    assert all(r.key and r.sender == "doomed" and r.attempts == 1 for r in decided)
    email_state = "delivered" if sent_before_kill["email"] else "sending"
    assert [r.state for r in decided] == [email_state, "sending"]
    assert len(smtp.messages) == sent_before_kill["email"]
    assert len(webhook.calls) == sent_before_kill["webhook"]

    # Two other replicas: one of them takes the deliveries over once the dead sender's hold runs out.
    replicas.start("B")
    replicas.start("C")
    _wait(
        "the deliveries to be recorded",
        lambda: all(r.state != "sending" for r in _deliveries(sessions, run_id)),
        120,
        replicas,
    )
    replicas.stop()
    settled = _deliveries(sessions, run_id)
    assert [(r.channel, r.state, r.key) for r in settled] == [
        ("email", "delivered", keys["email"]),
        ("webhook", "delivered", keys["webhook"]),
    ], [r.detail for r in settled]
    email, hook = settled
    assert hook.sender in ("B", "C") and hook.attempts == 2  # taken over once, by one of the heirs
    if sent_before_kill["email"]:
        assert (email.sender, email.attempts) == ("doomed", 1)  # recorded sent: never sent again
    else:
        assert email.sender in ("B", "C") and email.attempts == 2

    # The receivers see the same key on every send; deduping on it, each acted once.
    message_ids = [m["Message-ID"] for m in smtp.messages]
    assert message_ids == [f"<{keys['email']}@localhost>"]  # the e-mail was sent once in all
    calls = webhook.calls
    assert len(calls) == 1 + sent_before_kill["webhook"]  # a send whose record died with its sender repeats
    for call in calls:
        headers, body = call["headers"], call["body"]
        assert headers["X-Datalabs-Delivery"] == headers["Idempotency-Key"] == keys["webhook"]
        assert json.loads(body)["delivery"] == keys["webhook"]
        signature = notify.sign("hook-secret", headers["X-Datalabs-Timestamp"], body)
        assert headers["X-Datalabs-Signature"] == signature
    assert len({c["headers"]["X-Datalabs-Delivery"] for c in calls}) == 1
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Notice)) == 1  # the notice: exactly once
        assert db.get(PipelineRun, run_id).attempts == 1
