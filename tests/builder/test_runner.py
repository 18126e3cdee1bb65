"""Builds left unfinished: a replica that starts fails those of stopped processes, never those another live
replica is running (each build holds the lease `build:<id>` while queued or running)."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest

from datalabs.accounts import service as accounts
from datalabs.builder import runner
from datalabs.builder.runner import BuildQueue
from datalabs.db.engine import transaction
from datalabs.db.leases import HOST, Lease
from datalabs.db.models import App, AppVersion
from datalabs.db.types import utcnow


@pytest.fixture
def versions(sessions):
    """Makes an app version in `state`, recorded `age` ago; returns its id."""
    with transaction(sessions) as db:
        user = accounts.create_user(db, "ada", "a-long-password-1", email="ada@example.org")
        app = App(name="tool", owner_id=user.id)
        db.add(app)
        db.flush()
        app_id = app.id

    def make(state: str = "building", age: timedelta = timedelta(minutes=5)) -> int:
        with transaction(sessions) as db:
            n = db.query(AppVersion).count()
            v = AppVersion(app_id=app_id, version=f"0.{n}", state=state, created_at=utcnow() - age)
            db.add(v)
            db.flush()
            return v.id

    return make


def state_of(sessions, version_id: int) -> str:
    with sessions() as db:
        return db.get(AppVersion, version_id).state


def test_a_starting_replica_fails_only_the_builds_nobody_runs(settings, sessions, versions):
    other = subprocess.Popen(["sleep", "60"])  # another replica's process on this host, alive
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        running_elsewhere = versions()
        Lease(sessions, f"build:{running_elsewhere}", ttl=60, holder=f"{HOST}:{other.pid}:a1").acquire()
        on_another_host = versions("queued")
        Lease(sessions, f"build:{on_another_host}", ttl=60, holder="elsewhere:123:b2").acquire()
        of_a_dead_process = versions()
        Lease(sessions, f"build:{of_a_dead_process}", ttl=60, holder=f"{HOST}:{dead.pid}:c3").acquire()
        lease_ran_out = versions()
        Lease(sessions, f"build:{lease_ran_out}", ttl=60, holder="elsewhere:9:d4").acquire(
            now=utcnow() - timedelta(minutes=2)
        )
        never_leased = versions()
        just_recorded = versions("queued", age=timedelta(seconds=1))
        built = versions("built")

        assert BuildQueue(settings, sessions).reap() == 3
        assert {v: state_of(sessions, v) for v in (of_a_dead_process, lease_ran_out, never_leased)} == {
            of_a_dead_process: "failed",
            lease_ran_out: "failed",
            never_leased: "failed",
        }
        assert state_of(sessions, running_elsewhere) == "building"
        assert state_of(sessions, on_another_host) == "queued"
        assert state_of(sessions, just_recorded) == "queued"
        assert state_of(sessions, built) == "built"
        with sessions() as db:
            assert "restarted during the build" in db.get(AppVersion, never_leased).error
    finally:
        other.kill()
        other.wait()


def test_a_build_holds_its_lease_until_it_ends(settings, sessions, versions, monkeypatch):
    """Submitted here: leased by this process (a second replica's reap leaves it), renewed, and the lease is
    gone once the build ended (here it fails at once: its builder does not exist)."""
    monkeypatch.setattr(runner, "RENEW", 0.05)
    version_id = versions("queued", age=timedelta(seconds=0))
    with transaction(sessions) as db:
        db.get(AppVersion, version_id).app.builder = "no-such-builder"
    queue = BuildQueue(settings, sessions)
    queue.submit(version_id)
    try:
        assert queue.wait(version_id, timeout=60)
    finally:
        queue.shutdown()
    assert state_of(sessions, version_id) == "failed"
    assert Lease(sessions, f"build:{version_id}").current() is None


def test_a_queued_build_of_a_live_replica_survives_another_replicas_start(settings, sessions, versions):
    version_id = versions("queued", age=timedelta(seconds=0))
    here = BuildQueue(settings, sessions)
    lease = Lease(sessions, f"build:{version_id}", ttl=runner.TTL)
    lease.acquire()  # as `submit` does before the build is handed to the pool
    assert BuildQueue(settings, sessions).reap() == 0
    assert state_of(sessions, version_id) == "queued"
    here.shutdown()
