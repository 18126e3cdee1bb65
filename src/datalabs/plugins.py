"""Entry-point plugins. Core parts register through the same groups as extensions (like Datasette):

- `datalabs.runtimes`: RuntimeBackend classes, by short name; each declares the lab kinds it starts.
- `datalabs.engines`, `datalabs.harvesters`, `datalabs.notifiers`: pipeline engines, harvesters, notifiers.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)


@cache
def load(group: str) -> dict[str, Any]:
    """The objects registered under `group`, by name; a plugin that fails to import is logged and skipped."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=group):
        try:
            found[ep.name] = ep.load()
        except Exception:  # a broken plugin must not take the platform down
            log.exception("plugin %s in %s failed to load", ep.name, group)
    return found


def runtime_kinds() -> set[str]:
    """Lab kinds (web, desktop) that some installed runtime backend can start."""
    return {kind for backend in load("datalabs.runtimes").values() for kind in getattr(backend, "kinds", ())}
