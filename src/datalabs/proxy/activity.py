"""`ActivityRecorder`: when each lab last saw traffic through the proxy, for the idle culler.

Recording happens on every proxied request, so it is one dict store of a monotonic clock reading: no
I/O, no lock (the proxy runs on one event loop). The culler reads `idle_for()` and persists what it
needs on its own schedule. Note it measures traffic, not intent: a page left open that polls the lab
counts as activity (as with JupyterHub's proxy-based activity).
"""

from __future__ import annotations

import time


class ActivityRecorder:
    """Callable as the proxy's `on_activity(lab_id)`."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def __call__(self, lab_id: str) -> None:
        self._last[lab_id] = time.monotonic()

    def last_seen(self, lab_id: str) -> float | None:
        """time.monotonic() of the lab's last proxied request or WebSocket message, or None."""
        return self._last.get(lab_id)

    def idle_for(self, lab_id: str) -> float | None:
        """Seconds since the lab's last traffic, or None if it has seen none since the proxy started."""
        last = self._last.get(lab_id)
        return None if last is None else time.monotonic() - last

    def forget(self, lab_id: str) -> None:
        self._last.pop(lab_id, None)

    def snapshot(self) -> dict[str, float]:
        return dict(self._last)
