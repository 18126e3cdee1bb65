"""Runs that ended in this process, announced to requests waiting for them (`GET /api/v1/runs/{id}?wait=`).

A worker in the same process (the embedded default) announces each run it finishes, so a waiting request
answers at once; a run finished by another process is seen at the waiter's next look at the database
(`RECHECK` seconds at most)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

RECHECK = 0.5
_lock = threading.Lock()
_waiters: dict[str, list[Waiter]] = {}


def announce(run_id: str) -> None:
    """Called (from any thread) once the run's final state is committed."""
    with _lock:
        waiting = _waiters.pop(run_id, [])
    for waiter in waiting:
        with contextlib.suppress(RuntimeError):  # that loop closed meanwhile
            waiter.loop.call_soon_threadsafe(waiter.event.set)


class Waiter:
    """Registered for `run_id` while in a `with` block: enter it before looking at the run's state, so an
    end announced between that look and `wait` is not missed."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def __enter__(self) -> Waiter:
        with _lock:
            _waiters.setdefault(self.run_id, []).append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            rest = [w for w in _waiters.get(self.run_id, []) if w is not self]
            if rest:
                _waiters[self.run_id] = rest
            else:
                _waiters.pop(self.run_id, None)

    async def wait(self, timeout: float) -> None:
        """Until the run is announced or `timeout` seconds pass; re-arms for the next wait."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()
        self.__exit__()
        self.__enter__()
