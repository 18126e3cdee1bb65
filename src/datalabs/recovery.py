"""Start-up duties of a platform process on the files it shares with others on this host (issue 13):

- abandoned temporaries are removed: uploads and copies in workspaces, app imports and staged sources,
  pipeline attempt folders (all from the journal of temporaries, `workspaces/inflight.py`, without a
  walk of the workspaces) and half-built environments (`builder/gc.py`). Temporaries whose writer is
  alive in another process are left alone;
- quotas: the mechanism in force is detected and said (`sandbox/quota.py`), and where project quotas
  hold, every workspace is made its project with its limit (`labs/quota_check.py`).
"""

from __future__ import annotations

import logging

from datalabs.builder import gc
from datalabs.config import Settings
from datalabs.labs import quota_check
from datalabs.sandbox import quota
from datalabs.workspaces import inflight

log = logging.getLogger(__name__)


def at_start(settings: Settings, sessions) -> None:
    removed = inflight.journal(settings).recover() + gc.remove_leftovers(settings)
    if removed:
        log.warning("recovery: removed %d temporaries abandoned by a stopped process", len(removed))
    quota.enforcement(settings)  # detected (and logged) once, before anything is written
    if synced := quota_check.sync_all(settings, sessions):
        log.info("quotas: %d workspaces have their project and limit", synced)
