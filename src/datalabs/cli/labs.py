"""`datalabs labs launch|ls|logs|stop|restart|rm|open`: your running datalabs, through the API."""

from __future__ import annotations

import json
import webbrowser
from urllib.parse import urljoin

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from datalabs.cli.output import call as _call
from datalabs.cli.output import client as _client
from datalabs.cli.output import console, fail
from datalabs.client import Client

app = typer.Typer(help="Launch and manage your labs (running datalabs).")


@app.command()
def launch(
    datalab: str,
    version: str = typer.Option(None, help="Version (default: newest)."),
    name: str = typer.Option("", help="A name for this lab."),
    cpu: float = typer.Option(None, help="CPUs (default: the datalab's default)."),
    memory: str = typer.Option(None, help="Memory, e.g. 4G (default: the datalab's default)."),
    gpu: int = typer.Option(None, help="GPUs (default: the datalab's default)."),
    cluster: str = typer.Option(
        None, help="Cluster to run on (`datalabs labs clusters`); default: the first open to you."
    ),
    team: str = typer.Option(
        None,
        help="mlflow/mlflow-model: the team it serves; another datalab: the team whose MLflow it logs to.",
    ),
    model: str = typer.Option(None, help="mlflow-model: the model version to serve, models:/NAME/VERSION."),
    wait: bool = typer.Option(True, help="Follow the start until the lab is ready."),
) -> None:
    """Launch DATALAB and show the start's progress; prints the lab's URL when ready."""
    with _client() as client:
        body = {
            "datalab": datalab,
            "version": version,
            "name": name,
            "cluster": cluster,
            **({"team": team} if team else {}),
            **({"model": model} if model else {}),
            "resources": {k: v for k, v in (("cpu", cpu), ("memory", memory), ("gpu", gpu)) if v is not None},
        }
        lab = _call(lambda: client.post("/api/v1/labs", body))
        console.print(f"lab [bold]{lab['id']}[/] ({lab['name']}) is {lab['state']}")
        if not wait:
            return
        outcome = _follow(client, lab["id"])
        if outcome["event"] == "failed":
            fail(f"the lab did not start: {outcome['message']}")
        console.print(f"ready: {urljoin(client.url, lab['url'])}")  # the lab's own origin


def _follow(client: Client, lab_id: str) -> dict:
    """Read the lab's server-sent events, drawing a progress bar, until ready or failed."""
    with Progress(TextColumn("{task.description}"), BarColumn(), console=console, transient=True) as bar:
        task = bar.add_task("queued", total=100)
        event = ""
        with client.http.stream("GET", f"/api/v1/labs/{lab_id}/events", timeout=None) as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data = json.loads(line.split(":", 1)[1])
                    bar.update(task, completed=data.get("progress", 0), description=data.get("message", ""))
                    if event in ("ready", "failed", "state"):
                        return {"event": event, **data}
    return {"event": "failed", "message": "the event stream ended early"}


@app.command()
def clusters(as_json: bool = typer.Option(False, "--json")) -> None:
    """The clusters you may launch on, and what each can give now."""
    with _client() as client:
        found = _call(lambda: client.get("/api/v1/clusters"))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table(title=f"{len(found)} cluster(s)")
    for col in ("name", "title", "backend", "now"):
        table.add_column(col)
    for c in found:
        table.add_row(c["name"], c["title"], c["backend"], c["capacity"]["summary"])
    console.print(table)


@app.command("ls")
def ls(
    all_users: bool = typer.Option(False, "--all", help="Admins: every user's labs."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List your labs (newest first)."""
    with _client() as client:
        labs = _call(lambda: client.get("/api/v1/labs", all=str(all_users).lower()))
    if as_json:
        typer.echo(json.dumps(labs, indent=2))
        return
    table = Table(title=f"{len(labs)} lab(s)")
    for col in ("id", "name", "datalab", "state", "cluster", "cpu", "memory", "created"):
        table.add_column(col)
    for lab in labs:
        state = lab["state"] + (f": {lab['reason']}" if lab["reason"] else "")
        table.add_row(
            lab["id"],
            lab["name"],
            f"{lab['datalab']} {lab['version']}",
            state,
            lab["cluster"],
            str(lab["resources"]["cpu"]),
            lab["resources"]["memory"],
            lab["created_at"][:19],
        )
    console.print(table)


@app.command()
def logs(lab_id: str, tail: int = typer.Option(200, help="How many lines.")) -> None:
    """Print the lab's last log lines."""
    with _client() as client:
        typer.echo(_call(lambda: client.request("GET", f"/api/v1/labs/{lab_id}/logs", params={"tail": tail})))


@app.command()
def stop(lab_id: str) -> None:
    """Stop a lab (its record and logs stay until `rm`)."""
    with _client() as client:
        lab = _call(lambda: client.post(f"/api/v1/labs/{lab_id}/stop"))
    console.print(f"lab {lab_id} is {lab['state']}")


@app.command()
def restart(
    lab_id: str, wait: bool = typer.Option(True, help="Follow the start until the lab is ready.")
) -> None:
    """Start a stopped or failed lab again, as it was launched (same id, address, resources, volumes)."""
    with _client() as client:
        lab = _call(lambda: client.post(f"/api/v1/labs/{lab_id}/restart"))
        console.print(f"lab [bold]{lab['id']}[/] ({lab['name']}) is {lab['state']}")
        if not wait:
            return
        outcome = _follow(client, lab["id"])
        if outcome["event"] == "failed":
            fail(f"the lab did not start: {outcome['message']}")
        console.print(f"ready: {urljoin(client.url, lab['url'])}")


@app.command()
def rm(lab_id: str) -> None:
    """Destroy a lab: stop it if needed and delete its record and logs."""
    with _client() as client:
        _call(lambda: client.delete(f"/api/v1/labs/{lab_id}"))
    console.print(f"lab {lab_id} destroyed")


@app.command("open")
def open_lab(lab_id: str) -> None:
    """Open a running lab in your web browser (log in there with your account)."""
    with _client() as client:
        lab = _call(lambda: client.get(f"/api/v1/labs/{lab_id}"))
    if lab["state"] != "running":
        fail(f"lab {lab_id} is {lab['state']}" + (f": {lab['reason']}" if lab["reason"] else ""))
    # Through the lab's path on the platform's address (where the browser has its session): the
    # platform sends the browser on to the lab's own origin.
    url = urljoin(client.url, lab.get("path") or lab["url"])
    console.print(url)
    webbrowser.open(url)
