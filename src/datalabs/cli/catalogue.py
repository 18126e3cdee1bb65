"""`datalabs catalogue ls|show`: browse datalab definitions through the API."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from datalabs.cli.output import client as _client
from datalabs.cli.output import console, fail
from datalabs.client import ApiError

app = typer.Typer(help="Browse the datalab catalogue.")


@app.command("ls")
def ls(
    q: str = typer.Argument("", help="Words to search for."),
    kind: list[str] = typer.Option([], help="web or desktop (repeatable)."),
    mission: list[str] = typer.Option([], help="Mission (repeatable)."),
    instrument: list[str] = typer.Option([], help="Instrument (repeatable)."),
    keyword: list[str] = typer.Option([], help="Keyword (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON answer."),
) -> None:
    """List the datalabs you can see."""
    try:
        with _client() as client:
            result = client.datalabs(
                q, kind=kind, mission=mission, instrument=instrument, keyword=keyword, limit=500
            )
    except ApiError as exc:
        fail(exc.message)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"{result['total']} datalab(s)")
    for col in ("name", "title", "kind", "version", "mission", "available"):
        table.add_column(col)
    for d in result["items"]:
        status = "yes" if d["available"] else f"[yellow]no[/]: {d['unavailable_reason']}"
        table.add_row(d["name"], d["title"], d["kind"], d["version"], ", ".join(d["mission"]), status)
    console.print(table)


@app.command("show")
def show(name: str, version: str = typer.Option(None, help="A specific version (default: newest).")) -> None:
    """Show every metadata field of a datalab and its versions."""
    try:
        with _client() as client:
            detail = client.datalab(name)
            meta = client.get(f"/api/v1/datalabs/{name}/versions/{version}") if version else detail["meta"]
    except ApiError as exc:
        fail(exc.message)
    console.print(
        f"[bold]{meta['title']}[/] ({name} {meta['version']}) — versions: {', '.join(detail['versions'])}"
    )
    if not detail["available"]:
        console.print(f"[yellow]not available yet:[/] {detail['unavailable_reason']}")
    console.print_json(json.dumps(meta))
