"""Leases: a duty that must run in one process at a time across replicas (the lab manager) is done by
whoever holds its lease row, for as long as it renews it in time.

- `Lease.acquire()` takes the row if it is free, expired or already ours, in one conditional UPDATE
  (an INSERT the first time; of two inserts at once, the unique name lets one win), so two replicas
  never both succeed on SQLite or PostgreSQL.
- A holder that dies (kill -9, a lost host) stops renewing; its lease runs out `ttl` seconds after its
  last renewal and the next replica that asks takes it. A holder on this host whose process is gone
  is taken over at once (a restarted single-process platform does not wait out its own old lease).
- `LeaseKeeper` renews every `every` seconds and calls `on_gain` / `on_loss`. A holder that cannot
  reach the database gives its duties up before its lease can have run out for others: it counts from
  the start of its last successful renewal, on its own clock. Replicas' clocks must agree to well
  within `ttl` (NTP); the default 5 s leaves room for the usual milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from anyio import to_thread
from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from datalabs.db.engine import transaction
from datalabs.db.models import Lease as LeaseRow
from datalabs.db.types import utcnow

log = logging.getLogger(__name__)
HOST = socket.gethostname()


def new_holder() -> str:
    """This process, as a lease names it: host, pid and a random part (a pid is reused, this is not)."""
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_gone(holder: str) -> bool:
    """True if `holder` was a process on this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lease:
    def __init__(
        self, sessions: sessionmaker[Session], name: str, ttl: float = 5.0, holder: str = ""
    ) -> None:
        self.sessions, self.name, self.ttl = sessions, name, ttl
        self.holder = holder or new_holder()

    def acquire(self, now: datetime | None = None) -> bool:
        """Take or renew the lease until now + ttl; False if another live holder has it."""
        now = now or utcnow()
        until = now + timedelta(seconds=self.ttl)
        with transaction(self.sessions) as db:
            row = db.get(LeaseRow, self.name)
            if row is None:
                db.add(LeaseRow(name=self.name, holder=self.holder, expires_at=until, acquired_at=now))
                try:
                    db.flush()
                except IntegrityError:  # another replica inserted it first
                    return False
                return True
            free = or_(LeaseRow.holder == self.holder, LeaseRow.expires_at < now)
            if row.holder != self.holder and holder_gone(row.holder):
                free = or_(free, LeaseRow.holder == row.holder)
            values = {"holder": self.holder, "expires_at": until}
            if row.holder != self.holder:
                values["acquired_at"] = now
            taken = db.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, free)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            return bool(taken)

    def release(self) -> None:
        """Give the lease up now (a clean shutdown), so another replica need not wait for it to run out."""
        with transaction(self.sessions) as db:
            db.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
                .values(expires_at=datetime.fromtimestamp(0, UTC))
                .execution_options(synchronize_session=False)
            )

    def drop(self) -> None:
        """Delete the lease if this holder has it: for leases named after a piece of work that is over."""
        with transaction(self.sessions) as db:
            db.execute(
                delete(LeaseRow)
                .where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
                .execution_options(synchronize_session=False)
            )

    def current(self) -> tuple[str, datetime] | None:
        """(holder, expires_at) of the lease, or None if nobody ever took it."""
        with self.sessions() as db:
            row = db.get(LeaseRow, self.name)
            return (row.holder, row.expires_at) if row is not None else None


class LeaseKeeper:
    """Holds `lease` as long as this process runs: `on_gain()` when it gets it, `on_loss()` when it can no
    longer be sure to hold it (renewal refused, or failing for longer than the lease lasts)."""

    def __init__(
        self,
        lease: Lease,
        on_gain: Callable[[], Awaitable[None]],
        on_loss: Callable[[], Awaitable[None]],
        every: float = 1.0,
    ) -> None:
        self.lease, self.on_gain, self.on_loss, self.every = lease, on_gain, on_loss, every
        self.held = False
        self._valid_until = 0.0  # time.monotonic() until which the last renewal holds

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.every)
        finally:
            if self.held:
                self.held = False
                await self.on_loss()
                await to_thread.run_sync(self._release_quietly)

    async def step(self) -> None:
        started = time.monotonic()
        try:
            ok = await to_thread.run_sync(self.lease.acquire)
        except Exception as exc:  # the database is unreachable: hold on only while the lease surely holds
            log.warning("lease %s: could not renew: %s", self.lease.name, exc)
            ok = self.held and time.monotonic() < self._valid_until
        else:
            if ok:  # margin: our clock and the DB's UPDATE both count from before the request
                self._valid_until = started + self.lease.ttl - min(1.0, self.lease.ttl / 5)
        if ok and not self.held:
            self.held = True
            log.info("lease %s: held by this process (%s)", self.lease.name, self.lease.holder)
            await self.on_gain()
        elif not ok and self.held:
            self.held = False
            log.warning("lease %s: lost; its duties stop here", self.lease.name)
            await self.on_loss()

    def _release_quietly(self) -> None:
        try:
            self.lease.release()
        except Exception as exc:
            log.warning("lease %s: could not release: %s", self.lease.name, exc)
