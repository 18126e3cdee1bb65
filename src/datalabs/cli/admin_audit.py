"""`datalabs admin audit ...`: verify the audit log's hash chain, export it as CSV."""

from __future__ import annotations

import sys

import typer

from datalabs.cli._db import admin_session

app = typer.Typer(help="The audit log: verify its chain, export it.")


@app.command("verify")
def verify() -> None:
    """Walk the hash chain: OK, or the first record that does not verify (exit code 1)."""
    from datalabs.audit import chain

    with admin_session() as (db, _):
        broken = chain.verify(db)
    if broken is None:
        typer.echo("OK: the audit chain verifies")
        return
    where = f"record {broken.id}" if broken.id else "the chain's head"
    typer.secho(f"TAMPERED: {where} ({broken.at.isoformat()}): {broken.why}", fg="red", err=True)
    raise typer.Exit(1)


@app.command("export")
def export(csv: bool = typer.Option(True, "--csv", help="CSV (the only format), formula-safe.")) -> None:
    """Write every record, oldest first, as CSV to standard output."""
    from sqlalchemy import select

    from datalabs.audit.export import csv_lines
    from datalabs.db.models import AuditRecord

    with admin_session() as (db, _):
        query = select(AuditRecord).order_by(AuditRecord.id).execution_options(yield_per=500)
        records = db.execute(query).scalars()
        for line in csv_lines(records):
            sys.stdout.write(line)
