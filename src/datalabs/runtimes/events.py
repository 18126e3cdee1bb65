"""A per-lab list of progress events that any number of listeners can follow (replayed, then live)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from datalabs.runtimes.base import ProgressEvent


class EventLog:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self._changed = asyncio.Event()

    def add(self, progress: int, message: str, *, ready: bool = False, failed: bool = False) -> None:
        self.events.append(ProgressEvent(progress, message, ready, failed))
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def finished(self) -> bool:
        return bool(self.events) and (self.events[-1].ready or self.events[-1].failed)

    async def follow(self) -> AsyncIterator[ProgressEvent]:
        seen = 0
        while True:
            while seen < len(self.events):
                event = self.events[seen]
                seen += 1
                yield event
                if event.ready or event.failed:
                    return
            await self._changed.wait()


def tail_lines(path: Path | None, tail: int, window: int = 256 * 1024) -> str:
    """The last `tail` lines of a log file, reading only its end (logs can be large); "" if absent."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - window))
        lines = f.read().decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-tail:])
