"""Leases (db/leases.py) on SQLite and PostgreSQL: one holder at a time, taken over when it runs out or
its process died on this host, given up when it cannot be renewed; many takers at once, one wins."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import timedelta

from sqlalchemy.exc import OperationalError

from datalabs.db.leases import HOST, Lease, LeaseKeeper
from datalabs.db.types import utcnow


def test_one_holder_until_its_lease_runs_out(sessions):
    a, b = Lease(sessions, "manager", ttl=5), Lease(sessions, "manager", ttl=5)
    now = utcnow()
    assert a.acquire(now)
    assert not b.acquire(now + timedelta(seconds=1))
    assert a.acquire(now + timedelta(seconds=4))  # renewed: good until 9 s
    assert not b.acquire(now + timedelta(seconds=8))
    assert b.acquire(now + timedelta(seconds=9.5))  # a stopped renewing
    assert not a.acquire(now + timedelta(seconds=10))
    assert a.current()[0] == b.holder


def test_a_released_lease_is_taken_at_once(sessions):
    a, b = Lease(sessions, "manager"), Lease(sessions, "manager")
    assert a.acquire()
    a.release()
    assert b.acquire()
    a.release()  # not its lease any more: changes nothing
    assert not a.acquire()


def test_leases_are_independent_by_name(sessions):
    assert Lease(sessions, "manager").acquire()
    assert Lease(sessions, "indexer").acquire()


def test_a_dead_process_on_this_host_loses_its_lease_at_once(sessions):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    Lease(sessions, "manager", ttl=300, holder=f"{HOST}:{pid}:00000000").acquire()
    assert Lease(sessions, "manager").acquire()


def test_a_live_process_or_another_host_keeps_it(sessions):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert Lease(sessions, "manager", ttl=300, holder=f"{HOST}:{live.pid}:00000000").acquire()
        assert not Lease(sessions, "manager").acquire()
    finally:
        live.kill()
        live.wait()
    other = Lease(sessions, "other", ttl=300, holder="elsewhere.example:1:00000000")
    assert other.acquire()
    assert not Lease(sessions, "other").acquire()  # pid 1 of another host: not ours to judge


def test_of_many_takers_at_once_exactly_one_wins(sessions):
    takers = [Lease(sessions, "manager", ttl=30) for _ in range(8)]
    won: list[str] = []
    start = threading.Barrier(len(takers))

    def take(lease: Lease) -> None:
        start.wait()
        try:
            if lease.acquire():
                won.append(lease.holder)
        except OperationalError:  # SQLite's lock wait ran out: did not take it
            pass

    threads = [threading.Thread(target=take, args=(lease,)) for lease in takers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert takers[0].current()[0] == won[0]


def test_the_keeper_gives_its_duties_up_when_it_cannot_renew(sessions):
    events: list[str] = []

    async def gain() -> None:
        events.append("gain")

    async def loss() -> None:
        events.append("loss")

    lease = Lease(sessions, "manager", ttl=2)
    keeper = LeaseKeeper(lease, gain, loss, every=0.1)

    async def scenario() -> None:
        await keeper.step()
        assert events == ["gain"] and keeper.held
        real = lease.acquire

        def unreachable(now=None):
            raise OperationalError("SELECT", {}, Exception("connection refused"))

        lease.acquire = unreachable
        await keeper.step()  # within the lease: still held, no change
        assert events == ["gain"]
        keeper._valid_until = 0.0  # as if the lease had run out meanwhile
        await keeper.step()
        assert events == ["gain", "loss"] and not keeper.held
        lease.acquire = real
        await keeper.step()  # nobody else took it: ours again
        assert events == ["gain", "loss", "gain"]

    asyncio.run(scenario())


def test_the_keeper_loses_the_lease_to_a_taker_after_it_ran_out(sessions):
    events: list[str] = []

    async def note(what: str) -> None:
        events.append(what)

    mine = Lease(sessions, "manager", ttl=2)
    keeper = LeaseKeeper(mine, lambda: note("gain"), lambda: note("loss"))

    async def scenario() -> None:
        await keeper.step()
        other = Lease(sessions, "manager", ttl=2)
        assert other.acquire(utcnow() + timedelta(seconds=3))  # ours ran out (a long pause here)
        await keeper.step()
        assert events == ["gain", "loss"]

    asyncio.run(scenario())
