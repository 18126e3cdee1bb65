"""One pipeline replica for the multi-process tests: `datalabs worker` itself (`cli.worker.worker`: the
worker slots, and the maintenance loop that reaps runs, resends notifications and fires schedules) in a
process of its own, configured by DATALABS_* like any replica, with test hooks set in this process only
(the product has none):

  --clock FILE          schedules fire by the time written in FILE (ISO 8601) instead of the clock; each
                        time the scheduler reads it, the replica writes what it read to FILE.<name>, so a
                        test knows every replica has seen a time before it moves the clock on;
  --stall-before-send N / --stall-after-send N
                        the Nth notification send of this process stops for good just before it starts,
                        or just after it returned (before its outcome is recorded); the replica writes
                        --marker first, and the test kills it with SIGKILL there.

Run as `python -m tests.pipelines.replica --name A [...]` from the project's root.
"""

from __future__ import annotations

import argparse
import os
import threading
from datetime import datetime
from pathlib import Path


def _file_clock(path: Path, seen: Path):
    def now() -> datetime:
        moment = datetime.fromisoformat(path.read_text().strip())
        tmp = seen.with_name(f"{seen.name}.tmp")  # one per replica: with_suffix gave all three clock.tmp
        tmp.write_text(moment.isoformat())
        os.replace(tmp, seen)
        return moment

    return now


def _stall_sends(before: int, after: int, marker: Path) -> None:
    from datalabs.pipelines import notify

    count = 0
    lock = threading.Lock()

    def stall(where: str) -> None:
        marker.write_text(where)
        threading.Event().wait()  # until the test's SIGKILL

    for cls in (notify.EmailNotifier, notify.WebhookNotifier):

        def send(self, event, _original=cls.send) -> None:
            nonlocal count
            with lock:
                count += 1
                n = count
            if n == before:
                stall(f"before send {n} ({event['delivery']})")
            _original(self, event)
            if n == after:
                stall(f"after send {n} ({event['delivery']})")

        cls.send = send


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--clock", type=Path)
    parser.add_argument("--stall-before-send", type=int, default=0)
    parser.add_argument("--stall-after-send", type=int, default=0)
    parser.add_argument("--marker", type=Path)
    args = parser.parse_args()
    if args.clock:
        from datalabs.pipelines import schedules

        schedules.utcnow = _file_clock(args.clock, args.clock.with_name(f"{args.clock.name}.{args.name}"))
    if args.stall_before_send or args.stall_after_send:
        _stall_sends(args.stall_before_send, args.stall_after_send, args.marker)

    from datalabs.cli.worker import worker

    worker(slots=args.slots, name=args.name, scheduler=True)


if __name__ == "__main__":
    main()
