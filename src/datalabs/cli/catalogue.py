"""`datalabs catalogue ls|show|build`: browse datalab definitions, and (admins) build the environments of
those that declare requirements, through the API."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import typer
from rich.markup import escape
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


@app.command("build")
def build(
    names: list[str] = typer.Argument(
        None, help="Datalabs to build (default: every one that needs a build)."
    ),
    version: str = typer.Option(None, help="A specific version (default: newest)."),
) -> None:
    """Build the environments of datalabs that declare requirements, on the platform, and follow their
    logs (administrators). Unchanged requirements reuse the environment. Exit code 1 if one failed."""
    failed = False
    try:
        with _client(timeout=60) as client:
            chosen = names or [b["name"] for b in client.get("/api/v1/catalogue/builds")]
            for name in chosen:
                failed |= not _build_one(client, name, version)
    except ApiError as exc:
        fail(exc.message)
    raise typer.Exit(1 if failed else 0)


def _build_one(client, name: str, version: str | None) -> bool:
    path = f"/api/v1/datalabs/{quote(name, safe='')}/build"
    params = {"version": version} if version else {}
    try:
        client.request("POST", path, params=params, json={})
    except ApiError as exc:
        if exc.code != "build_running":  # already building: follow that one
            raise
    printed, started = 0, None
    while True:
        build = client.get(path, **params)
        log = build["log"]
        if build["started_at"] != started:  # a build (re)started: its log is a new one
            printed, started = 0, build["started_at"]
        printed = min(printed, len(log))  # the log is a tail: never index past it
        for line in log[printed:]:
            console.print(f"[dim]{escape(name)}[/] {escape(line)}", highlight=False)
        printed = len(log)
        if not build["active"]:
            break
        time.sleep(0.5)
    if build["state"] == "built":
        console.print(f"[green]{escape(name)} {escape(build['version'])}: built[/]")
        return True
    console.print(
        f"[red]{escape(name)} {escape(build['version'])}: {build['state']}[/]: {escape(build['error'])}"
    )
    return False
