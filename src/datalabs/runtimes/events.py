"""A per-lab list of progress events that any number of listeners can follow (replayed, then live)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
