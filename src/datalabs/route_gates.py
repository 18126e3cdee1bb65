"""Skip, for each request, the included routers none of whose routes can match its path.

Since FastAPI 0.137 an `include_router` stays a wrapper in the app's route list, and every request walks
the wrappers in order, matching each of their routes with some bookkeeping per route, until one
matches. Measured under load (py-spy --gil, `bench replicas`), that walk was 40% of the CPU of an
authenticated `GET /api/v1/labs`, which comes after six routers. Upstream has the same idea as an open
pull request (fastapi#16159, by router prefix; most of ours share `/api/v1`, so this gates on the
routes' own paths instead).

A gate is exact: a route can only match a path equal to its own (no parameters) or starting with the
literal part before its first parameter (a mount: with its path). Anything this module cannot read
(another FastAPI's internals) leaves that router ungated: slower, never wrong.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.routing import Match, Mount
from starlette.types import Scope

log = logging.getLogger(__name__)


class _Gated:
    """Mixed into an included router's class: `matches` answers NONE at once for a path outside it."""

    _gate_exact: frozenset[str]
    _gate_prefixes: tuple[str, ...]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket"):
            path = get_route_path(scope)
            if path not in self._gate_exact and not path.startswith(self._gate_prefixes):
                return Match.NONE, {}
        return super().matches(scope)  # type: ignore[misc]


_gated_classes: dict[type, type] = {}


def paths_of(included: Any, outer: str = "") -> tuple[set[str], set[str]] | None:
    """(exact paths, literal prefixes) that the included router's routes can match; None if unknown.

    Read from the routers' own route lists and include prefixes (a route's effective path is the prefixes
    plus its own path, as FastAPI's `_RouterIncludeContext.path_for` makes it), not from
    `effective_candidates()`, which builds every route's dependency tree: that was 1.1 s of an app's 1.6 s
    start, paid by every test that makes an app."""
    try:
        routes, prefix = included.original_router.routes, outer + included.include_context.prefix
    except AttributeError:
        return None
    exact: set[str] = set()
    prefixes: set[str] = set()
    for route in routes:
        if hasattr(route, "original_router"):  # a router included in the included one
            nested = paths_of(route, prefix)
            if nested is None:
                return None
            exact |= nested[0]
            prefixes |= nested[1]
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            return None
        path = prefix + path
        if isinstance(route, Mount):
            prefixes.add(path)
        elif "{" in path:
            prefixes.add(path.split("{", 1)[0])
        else:
            exact.add(path)
    return exact, prefixes


def install(app: FastAPI) -> int:
    """Gate every included router of `app` (call once all are included); returns how many were gated."""
    gated = 0
    for route in app.router.routes:
        if not hasattr(route, "effective_candidates") or isinstance(route, _Gated):
            continue
        paths = paths_of(route)
        if paths is None:
            log.debug("route gates: %r left ungated (its routes' paths are unknown)", route)
            continue
        cls = type(route)
        if cls not in _gated_classes:
            _gated_classes[cls] = type(f"Gated{cls.__name__}", (_Gated, cls), {})
        route.__class__ = _gated_classes[cls]
        route._gate_exact = frozenset(paths[0])
        route._gate_prefixes = tuple(sorted(paths[1]))
        gated += 1
    return gated
