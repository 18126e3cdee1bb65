"""`datalabs worker`: a pipeline worker process for scale-out (DESIGN §6). Like `datalabs serve` it runs
on the platform host with DATALABS_HOME and the database configured; any number may run at once."""

from __future__ import annotations

import gc
import signal
import threading

import typer


def worker(
    slots: int = typer.Option(0, help="Runs executed at once (default: pipelines.slots)."),
    name: str = typer.Option("", help="Worker name shown on runs (default: host:pid)."),
    scheduler: bool = typer.Option(True, help="Also re-queue runs of dead workers and fire schedules."),
) -> None:
    """Claim queued pipeline runs and execute them until stopped (SIGTERM/SIGINT: running runs go back
    to the queue)."""
    import logging

    from datalabs.config import Settings
    from datalabs.db.engine import open_database
    from datalabs.pipelines.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    settings.ensure_home()
    engine, sessions = open_database(settings.database_url)
    w = Worker(settings, sessions, name=name, slots=slots)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    w.start(maintenance=scheduler)
    gc.freeze()  # start-up's objects live as long as the process: out of the collector's way (app.py)
    typer.echo(f"worker {w.name}: {w.slots} slot(s), sandbox {'on' if w.sandbox else 'OFF'}", err=True)
    stop.wait()
    w.stop()
    engine.dispose()
