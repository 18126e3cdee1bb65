"""`datalabs pipelines ls|show|register|push|run` and `datalabs runs ls|show|logs|cancel|outputs`,
through the API."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from datalabs.cli.output import call as _call
from datalabs.cli.output import client as _client
from datalabs.cli.output import console, fail
from datalabs.client import RunFailed

app = typer.Typer(help="CWL pipelines: browse, register, push versions, run.")
runs_app = typer.Typer(help="Pipeline runs: list, follow, cancel, outputs.")


def _parse_inputs(pairs: list[str], inputs_file: Path | None) -> dict:
    """key=value pairs (values parsed as JSON when they are JSON, e.g. count=3) over an inputs file."""
    from datalabs.sandbox import parsing

    try:
        inputs = parsing.read_yaml(inputs_file, str(inputs_file), parsing.LOCAL) if inputs_file else {}
        inputs = inputs or {}
    except parsing.DocumentError as exc:
        fail(exc.message)
    if not isinstance(inputs, dict):
        fail(f"{inputs_file}: the inputs must be a mapping of input names to values")
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            fail(f"'{pair}' is not NAME=VALUE")
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs


@app.command("ls")
def ls(
    q: str = typer.Option("", help="Search words."),
    kind: str = typer.Option("", help="system or user."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    with _client() as client:
        found = _call(lambda: client.get("/api/v1/pipelines", q=q, kind=kind))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("name", "version", "kind", "engine", "title")
    for p in found:
        table.add_row(p["name"], p["latest"], "system" if p["system"] else "user", p["engine"], p["title"])
    console.print(table)


@app.command()
def show(name: str) -> None:
    """A pipeline's details and inputs."""
    with _client() as client:
        p = _call(lambda: client.get(f"/api/v1/pipelines/{name}"))
    console.print(f"[bold]{p['name']}[/] {p['latest']} ({p['cwl_class']}, {p['engine']}): {p['title']}")
    if p["description"]:
        console.print(p["description"])
    for i in p["inputs"]:
        default = f" = {json.dumps(i['default'])}" if i["default"] is not None else ""
        console.print(f"  input  {i['id']}: {i['type_text']}{default}  {i['label']}")
    for o in p["outputs"]:
        console.print(f"  output {o['id']}: {o['type_text']}")


@app.command()
def register(
    name: str,
    cwl: Path = typer.Argument(None, help="A local CWL file (or use --workspace-path)."),
    workspace_path: str = typer.Option(None, help="A .cwl file or folder in a workspace, e.g. me/cwl"),
    version: str = typer.Option("1.0"),
    notes: str = typer.Option(""),
    title: str = typer.Option(""),
    keyword: list[str] = typer.Option([], help="Repeat for several."),
    allow_group: list[str] = typer.Option([], help="Groups that may see and run it."),
    allow_user: list[str] = typer.Option([], help="Users that may see and run it."),
    engine: str = typer.Option("cwltool", help="cwltool or toil."),
    system: bool = typer.Option(False, help="Administrators: a system pipeline, visible to everyone."),
) -> None:
    """Register a new pipeline."""
    body = {
        "name": name,
        "version": version,
        "notes": notes,
        "title": title,
        "keywords": keyword,
        "allowed_groups": allow_group,
        "allowed_users": allow_user,
        "engine": engine,
        "system": system,
        **_source(cwl, workspace_path),
    }
    with _client() as client:
        p = _call(lambda: client.post("/api/v1/pipelines", body))
    console.print(f"registered {p['name']} {p['latest']}")


def _source(cwl: Path | None, workspace_path: str | None) -> dict:
    if (cwl is None) == (workspace_path is None):
        fail("give a local CWL file or --workspace-path")
    if cwl is not None:
        return {"cwl": cwl.read_text(), "filename": cwl.name}
    return {"workspace_path": workspace_path}


@app.command()
def push(
    name: str,
    version: str,
    cwl: Path = typer.Argument(None),
    workspace_path: str = typer.Option(None),
    notes: str = typer.Option(""),
) -> None:
    """Publish a new version of a pipeline (versions are immutable)."""
    body = {"version": version, "notes": notes, **_source(cwl, workspace_path)}
    with _client() as client:
        p = _call(lambda: client.post(f"/api/v1/pipelines/{name}/versions", body))
    console.print(f"pushed {p['name']} {version}")


@app.command("run")
def run_pipeline(
    name: str,
    inputs: list[str] = typer.Argument(None, help="NAME=VALUE; files as me/<path> or volume:<volume>/<path>"),
    inputs_file: Path = typer.Option(None, "--inputs", help="YAML/JSON file of inputs."),
    version: str = typer.Option(None),
    output_dir: str = typer.Option("me", help="Workspace for the outputs: me or team:<name>."),
    cluster: str = typer.Option(
        None, help="Cluster the run's jobs go to (GET /api/v1/clusters); default: your first."
    ),
    engine: str = typer.Option(None, help="cwltool or toil; default: the pipeline's."),
    wait: bool = typer.Option(True, help="Wait and print the outputs."),
) -> None:
    """Run a pipeline; prints the run id, then (with --wait) its output object."""
    values = _parse_inputs(inputs or [], inputs_file)
    with _client() as client:
        pipeline = _call(lambda: client.pipelines.get(name))
        run = _call(
            lambda: pipeline.submit(
                values, version=version, output_dir=output_dir, cluster=cluster, engine=engine
            )
        )
        console.print(f"run [bold]{run.id}[/] queued", highlight=False)
        if not wait:
            return
        try:
            run.wait()
        except RunFailed as exc:
            fail(str(exc))
        typer.echo(json.dumps(run.outputs(), indent=2))


@runs_app.command("ls")
def runs_ls(
    pipeline: str = typer.Option(""),
    state: str = typer.Option(""),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    with _client() as client:
        found = _call(lambda: client.get("/api/v1/runs", pipeline=pipeline, state=state))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("id", "pipeline", "version", "state", "created", "reason")
    for r in found:
        table.add_row(
            r["id"], r["pipeline"], r["version"], r["state"], r["created_at"][:19], r["reason"][:60]
        )
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str) -> None:
    with _client() as client:
        typer.echo(json.dumps(_call(lambda: client.get(f"/api/v1/runs/{run_id}")), indent=2))


@runs_app.command("logs")
def runs_logs(run_id: str, follow: bool = typer.Option(False, "--follow", "-f")) -> None:
    """Print the run's log; with --follow, stream it until the run ends."""
    with _client() as client:
        if not follow:
            typer.echo(_call(lambda: client.get(f"/api/v1/runs/{run_id}/logs")), nl=False)
            return
        event = ""
        with client.http.stream(
            "GET", f"/api/v1/runs/{run_id}/logs", params={"follow": True}, timeout=None
        ) as s:
            if s.status_code >= 400:
                fail(f"no run '{run_id}' of yours")
            for line in s.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data = json.loads(line.split(":", 1)[1])
                    if event == "log":
                        typer.echo(data["text"], nl=False)
                    elif event == "end":
                        typer.echo(f"--- {data['state']} {data['reason']}".rstrip(), err=True)
                        raise typer.Exit(0 if data["state"] == "succeeded" else 1)


@runs_app.command("cancel")
def runs_cancel(run_id: str) -> None:
    with _client() as client:
        run = _call(lambda: client.post(f"/api/v1/runs/{run_id}/cancel"))
    console.print(f"run {run_id}: {run['state']}{' (cancelling)' if run['cancel_requested'] else ''}")


@runs_app.command("outputs")
def runs_outputs(run_id: str) -> None:
    with _client() as client:
        typer.echo(json.dumps(_call(lambda: client.get(f"/api/v1/runs/{run_id}/outputs")), indent=2))
