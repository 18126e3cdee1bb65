"""Run parsing that could still blow up (cwltool validation and packing, metadata validation, harvesting
a FITS/NetCDF/RINEX file) in a worker process with a memory and time budget, so one request can never
stall or starve the others.

Each call runs in a fresh process forked from a *forkserver*: a small process started once (lazily, or
by `warm()` at platform start) that has already imported the heavy libraries named with `preload()`
(cwltool costs ~0.5 s to import), so a task starts in milliseconds, warm. The server itself is never
forked (it is multi-threaded: uvicorn, the pipeline worker, lab threads). In the task's process:

- address space (RLIMIT_AS) is capped at what the warm worker holds plus `Budget.memory`: the parser
  gets MemoryError (or dies) instead of growing the host's memory;
- CPU time (RLIMIT_CPU) is capped at `Budget.cpu` seconds per item: the kernel stops the process;
- the caller waits at most `Budget.wall` seconds per item (a parser stuck on I/O or sleeping), then
  kills it.

Over budget, the caller gets `OverBudget` (413, code `parse_budget`) saying what was too big or too
slow; a parser that crashes gives `ParserCrashed` (422, `parse_failed`). Exceptions the task raises
(`Invalid`, `LoadError`, ...) are re-raised in the caller as they were. At most `slots()` tasks run at
once; a caller waits up to `Budget.wall` for a free one (then `TooManyRequests`), so a flood of hostile
uploads costs a bounded amount of memory. Callers block: in async code, call from a thread.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import resource
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from datalabs.errors import Invalid, TooLarge, TooManyRequests

MiB = 2**20


@dataclass(frozen=True)
class Budget:
    memory: int = 512 * MiB  # address space a task may add to the warm worker's
    cpu: float = 30.0  # CPU seconds per item
    wall: float = 60.0  # seconds per item, and to wait for a free slot
    max_result: int = 64 * MiB  # pickled size of one item's result


DEFAULT = Budget()


class OverBudget(TooLarge):
    """The task needed more memory or time than its budget."""

    code = "parse_budget"


class ParserCrashed(Invalid):
    """The task's process died without answering (a crash in a C library, often for want of memory)."""

    code = "parse_failed"


@dataclass
class Outcome:
    args: tuple
    value: Any = None
    error: BaseException | None = None


_context = multiprocessing.get_context("forkserver")
# "__main__": imported once by the forkserver; otherwise every task would import the program's main
# module again (multiprocessing's rule for spawned children; ours are guarded by `if __name__ ...`).
_preload: list[str] = ["__main__", "datalabs.sandbox.budget"]
_lock = threading.Lock()
_slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))
_slot_count = max(2, os.cpu_count() or 2)


def preload(*modules: str) -> None:
    """Modules the forkserver imports when it starts (ignored once it runs: call at import time)."""
    with _lock:
        _preload.extend(m for m in modules if m not in _preload)
        _context.set_forkserver_preload(list(_preload))


def warm() -> None:
    """Start the forkserver now (it imports the preloaded modules), so the first task starts warm."""
    from multiprocessing import forkserver

    with _lock:
        _context.set_forkserver_preload(list(_preload))
    forkserver.ensure_running()


def set_slots(count: int) -> None:
    """How many tasks may run at once (default: the number of CPUs, at least 2)."""
    global _slots, _slot_count
    _slots, _slot_count = threading.BoundedSemaphore(count), count


def slots() -> int:
    return _slot_count


def run(fn: Callable[..., Any], *args: Any, budget: Budget = DEFAULT, what: str = "parsing") -> Any:
    """`fn(*args)` in a worker within `budget`; its result, or its exception re-raised here.

    `fn` must be a module-level function (it is pickled by name), `args` and the result picklable.
    `what` names the work in errors ("validating main.cwl")."""
    outcomes = map_items(fn, [args], budget=budget, what=lambda _: what)
    try:
        outcome = next(outcomes)
    finally:
        outcomes.close()  # ends the worker and frees its slot now, not when garbage-collected
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def map_items(
    fn: Callable[..., Any],
    items: Sequence[tuple],
    *,
    budget: Budget = DEFAULT,
    what: Callable[[tuple], str] = lambda args: "parsing",
    wait: float | None = None,
) -> Iterator[Outcome]:
    """`fn(*args)` for each tuple of `items`, in order, each within `budget`: one Outcome per item with
    its value or error. One worker serves the items in turn; one that dies or runs over is replaced and
    the next item goes on in a fresh one. `wait`: seconds to wait for a free slot (default `budget.wall`;
    `math.inf`: as long as it takes, for batch work such as a harvest)."""
    pending = list(items)
    timeout = budget.wall if wait is None else (None if math.isinf(wait) else wait)
    while pending:
        slots = _slots  # the one acquired is the one released, even if `set_slots` runs meanwhile
        if not slots.acquire(timeout=timeout):
            raise TooManyRequests(
                f"{what(pending[0])}: the platform is busy with other documents; try again shortly",
                retry_after=math.ceil(budget.wall),
                code="parse_busy",
            )
        try:
            done = yield from _serve(fn, pending, budget, what)
        finally:
            slots.release()
        pending = pending[done:]


def _serve(fn, items: list[tuple], budget: Budget, what) -> Iterator[Outcome]:
    """Outcomes from one worker process until it finishes or fails; returns how many items it settled."""
    receiver, sender = _context.Pipe(duplex=False)
    proc = _context.Process(
        target=_worker, args=(sender, fn, items, budget), daemon=True, name="datalabs-budget"
    )
    with _lock:  # the preload list is read when the forkserver starts
        _context.set_forkserver_preload(list(_preload))
    proc.start()
    sender.close()
    settled = 0
    try:
        for args in items:
            if not receiver.poll(budget.wall):
                _kill(proc)
                yield Outcome(args, error=OverBudget(f"{what(args)} took longer than {budget.wall:g} s"))
                return settled + 1
            try:
                kind, payload = pickle.loads(receiver.recv_bytes(budget.max_result + 65536))
            except (EOFError, OSError):
                yield Outcome(args, error=_death(proc, budget, what(args)))
                return settled + 1
            settled += 1
            if kind == "ok":
                yield Outcome(args, value=payload)
            elif kind == "memory":
                yield Outcome(args, error=_memory(budget, what(args)))
                return settled
            else:
                yield Outcome(args, error=_rebuild(payload))
        return settled
    finally:
        receiver.close()
        _kill(proc)


def _kill(proc) -> None:
    if proc.is_alive():
        proc.kill()
    proc.join(5)


def _memory(budget: Budget, what: str) -> OverBudget:
    return OverBudget(f"{what} needed more than {budget.memory // MiB} MiB of memory")


def _death(proc, budget: Budget, what: str) -> Exception:
    proc.join(5)
    code = proc.exitcode
    if code == -signal.SIGXCPU:  # RLIMIT_CPU's soft limit
        return OverBudget(f"{what} used more than {budget.cpu:g} s of CPU time")
    reason = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    return ParserCrashed(
        f"{what} failed: the parser crashed ({reason}), possibly for want of memory "
        f"(limit {budget.memory // MiB} MiB)"
    )


# ---- in the worker process -----------------------------------------------------------------------------


def _worker(conn: Connection, fn, items: list[tuple], budget: Budget) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write a core of the parse
    _limit(resource.RLIMIT_AS, _address_space() + budget.memory)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    for args in items:
        used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        _limit(resource.RLIMIT_CPU, math.ceil(used + budget.cpu))
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            reply = ("memory", None)
        except BaseException as exc:  # every failure goes back to the caller, who decides
            reply = ("error", _portable(exc))
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            data = pickle.dumps(("memory", None))
        except Exception as exc:  # an unpicklable result is the task's bug: say so, do not hang
            data = pickle.dumps(("error", _portable(TypeError(f"result not transferable: {exc}"))))
        if len(data) > budget.max_result:
            error = OverBudget(f"the result is larger than {budget.max_result // MiB} MiB")
            data = pickle.dumps(("error", _portable(error)))
        conn.send_bytes(data)
        if reply[0] == "memory":
            return  # the heap may be fragmented past use: the caller starts a fresh worker


def _limit(which: int, soft: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _portable(exc: BaseException) -> tuple[type, tuple, dict]:
    """An exception as (class, args, attributes), rebuilt without calling its __init__ (whose signature
    may not match `args`: `Invalid(message, code=...)`, `LoadError(problems)`)."""
    payload = (type(exc), exc.args, dict(getattr(exc, "__dict__", {})))
    try:
        pickle.loads(pickle.dumps(payload))
        return payload
    except Exception:
        return (RuntimeError, (f"{type(exc).__name__}: {exc}",), {})


def _rebuild(payload: tuple[type, tuple, dict]) -> BaseException:
    cls, args, attrs = payload
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(attrs)
    return exc
