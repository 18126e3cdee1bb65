"""`RouteTable`: where the proxy looks up which lab process serves `/datalabs/{id}/`.

Modelled on JupyterHub's `Proxy` (add_route / delete_route / get_all_routes + a periodic `check_routes`
that reconciles with the spawners' truth). The runtime service owns the truth (which labs run and on
which socket); the route table is a cache of it that the proxy reads on every request, so `get_route`
must be cheap and must never do I/O that can block the event loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # routes.py imports this module for its implementation
    from datalabs.proxy.routes import Route


@dataclass
class RouteChanges:
    """What `reconcile` changed: lab ids added, removed and updated (same id, different route)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.updated)


class RouteTable(abc.ABC):
    """The set of routes the proxy serves, keyed by lab id.

    Contract for every implementation (tests/proxy/test_routes.py runs it against each):
    - `add_route(route)` makes `route` the route of `route.lab_id`, replacing any previous one; idempotent.
    - `delete_route(lab_id)` removes it; deleting an unknown id is not an error (a retry after a crash
      must be able to converge).
    - `get_route(lab_id)` returns the current route or None; it is on the hot path of every proxied
      request, so it must answer from memory.
    - `get_all_routes()` returns a snapshot (a new dict the caller may keep) of every route.
    - `reconcile(wanted)` makes the table equal to `wanted` and reports what it changed.
    All methods are async so that a shared implementation (e.g. one backed by the database or an external
    proxy's API) can be dropped in without changing callers.
    """

    @abc.abstractmethod
    async def add_route(self, route: Route) -> None:
        """Add `route`, or replace the route with the same lab id."""

    @abc.abstractmethod
    async def delete_route(self, lab_id: str) -> None:
        """Remove the route of `lab_id`; no error if there is none."""

    @abc.abstractmethod
    async def get_route(self, lab_id: str) -> Route | None:
        """The route of `lab_id`, or None when the lab is unknown (not running, or deleted)."""

    @abc.abstractmethod
    async def get_all_routes(self) -> dict[str, Route]:
        """A snapshot of all routes, keyed by lab id."""

    async def reconcile(self, wanted: dict[str, Route]) -> RouteChanges:
        """Add, replace and delete routes until the table equals `wanted`; return what changed.

        The generic version goes through the four primitives (so it works for any implementation);
        implementations that can swap the whole table atomically should override it.
        """
        current = await self.get_all_routes()
        changes = RouteChanges()
        for lab_id, route in wanted.items():
            if route.lab_id != lab_id:
                raise ValueError(f"route for '{route.lab_id}' filed under '{lab_id}'")
            old = current.get(lab_id)
            if old == route:
                continue
            await self.add_route(route)
            (changes.added if old is None else changes.updated).append(lab_id)
        for lab_id in current.keys() - wanted.keys():
            await self.delete_route(lab_id)
            changes.removed.append(lab_id)
        changes.removed.sort()
        return changes
