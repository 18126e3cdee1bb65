"""`datalabs volumes ls|add|rm`: the data volumes you can mount (admins register and remove them)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from datalabs.cli.output import console, fail
from datalabs.client import ApiError, Client, NotConfigured

app = typer.Typer(help="Data volumes: read-only archive folders mounted into labs at /media/data/<name>.")


def _call(fn):
    try:
        with Client() as client:
            return fn(client)
    except NotConfigured as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(exc.message)


@app.command("ls")
def ls(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the data volumes available to you."""
    volumes = _call(lambda c: c.get("/api/v1/volumes"))
    if as_json:
        typer.echo(json.dumps(volumes, indent=2))
        return
    table = Table(title=f"{len(volumes)} data volume(s)")
    for col in ("name", "description", "mission", "domain", "tags", "groups"):
        table.add_column(col)
    for v in volumes:
        table.add_row(
            v["name"],
            v["description"],
            ", ".join(v["mission"]),
            v["domain"],
            ", ".join(v["tags"]),
            ", ".join(v["allowed_groups"]) or "everyone",
        )
    console.print(table)


@app.command()
def add(
    name: str = typer.Argument(..., help="e.g. PlanckPublic"),
    host_path: str = typer.Argument(..., help="Absolute folder on the platform host."),
    description: str = typer.Option("", help="What is in it."),
    group: list[str] = typer.Option([], "--group", help="Allowed group (repeatable; none: everyone)."),
    mission: list[str] = typer.Option([], help="Mission (repeatable)."),
    domain: str = typer.Option("", help="e.g. astronomy, gnss, earth-observation."),
    tag: list[str] = typer.Option([], "--tag", help="Tag (repeatable)."),
) -> None:
    """Register a data volume (administrators)."""
    body = {
        "name": name,
        "host_path": host_path,
        "description": description,
        "allowed_groups": group,
        "mission": mission,
        "domain": domain,
        "tags": tag,
    }
    volume = _call(lambda c: c.post("/api/v1/volumes", body))
    console.print(f"registered {volume['name']}: labs see it at {volume['mount_path']}")


@app.command()
def rm(name: str) -> None:
    """Unregister a data volume (administrators; its files are left alone)."""
    _call(lambda c: c.delete(f"/api/v1/volumes/{name}"))
    console.print(f"unregistered {name}")
