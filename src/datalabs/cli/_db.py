"""Direct database access for the `admin` bootstrap commands (everything else goes through the API)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from datalabs.config import Settings
from datalabs.errors import DatalabsError


@contextmanager
def admin_session() -> Iterator[tuple[Any, Settings]]:
    """A committed-on-success DB session; a domain error becomes a clear message and exit code 1."""
    from datalabs.db.engine import open_database, transaction

    settings = Settings()
    settings.ensure_home()
    engine, sessions = open_database(settings.database_url)
    try:
        with transaction(sessions) as db:
            yield db, settings
    except DatalabsError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
