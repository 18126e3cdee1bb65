"""Open WebSocket connections of share guests (issue 19): who is connected to which lab, since when, in
which mode; each is ended when its share is revoked or its mode changes.

A revoke is a row deleted in the database, possibly by another replica: while at least one guest
connection is open here, one task re-asks the share mode of each every `interval` seconds (through the
authenticator's share cache, so one query per guest and lab, whatever the number of their connections).
With no guest connection open there is no task and no cost; owners' connections are never registered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from datalabs.proxy.routes import Route

log = logging.getLogger("datalabs.proxy")
SCOPE_GUEST = "datalabs.guest"  # set by LabProxy.admit for a share guest: the principal
REVOKED = "share revoked"
CHANGED = "share changed"
CLOSE_CODE = 4403  # sent to the guest's browser (an application code: RFC 6455 §7.4.2)

ShareMode = Callable[[Any, Route], Awaitable[str | None]]


@dataclass(eq=False)
class Guest:
    """One open connection of a guest. `end(reason)` closes it (called once, from the event loop)."""

    user: str
    mode: str
    route: Route
    principal: Any = field(repr=False)
    end: Callable[[str], None] = field(repr=False)
    since: float = field(default_factory=time.time)


class GuestConnections:
    def __init__(self, share_mode: ShareMode, interval: float = 1.0) -> None:
        self.share_mode, self.interval = share_mode, interval
        self._open: dict[str, set[Guest]] = {}
        self._task: asyncio.Task | None = None

    def add(self, guest: Guest) -> None:
        self._open.setdefault(guest.route.lab_id, set()).add(guest)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def discard(self, guest: Guest) -> None:
        found = self._open.get(guest.route.lab_id)
        if found is not None:
            found.discard(guest)
            if not found:
                del self._open[guest.route.lab_id]

    def connected(self, lab_id: str) -> list[Guest]:
        """The lab's open guest connections on this replica, oldest first."""
        return sorted(self._open.get(lab_id, ()), key=lambda g: g.since)

    async def _watch(self) -> None:
        while self._open:
            await asyncio.sleep(self.interval)
            for guest in [g for found in list(self._open.values()) for g in found]:
                try:
                    mode = await self.share_mode(guest.principal, guest.route)
                except Exception:  # the database away: keep the connection, ask again next time
                    log.exception("could not check the share of %s on lab %s", guest.user, guest.route.lab_id)
                    continue
                if mode != guest.mode:
                    self.discard(guest)
                    guest.end(REVOKED if mode is None else CHANGED)
