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


triggers_app = typer.Typer(help="Triggers: runs started by new data, a signed webhook or another run's end.")
app.add_typer(triggers_app, name="triggers")


@triggers_app.command("ls")
def triggers_ls(pipeline: str, as_json: bool = typer.Option(False, "--json")) -> None:
    with _client() as client:
        found = _call(lambda: client.get(f"/api/v1/pipelines/{pipeline}/triggers"))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("id", "kind", "name", "state", "config")
    for t in found:
        config = t["hook_url"] or json.dumps(t["config"], separators=(",", ":"))
        table.add_row(str(t["id"]), t["kind"], t["name"], "paused" if t["paused"] else "active", config[:70])
    console.print(table)


@triggers_app.command("add")
def triggers_add(
    pipeline: str,
    kind: str = typer.Argument(..., help="new_data, webhook or run_finished."),
    watch: str = typer.Option("", help="new_data: a folder, e.g. me/incoming or volume:Demo/in."),
    search: str = typer.Option("", help="new_data: a saved asset search, JSON (the explorer's query)."),
    input_name: str = typer.Option("", "--input", help="new_data: the input receiving the file(s)."),
    mode: str = typer.Option("per_file", help="new_data: per_file or batch."),
    window: int = typer.Option(60, help="new_data, batch: seconds a batch gathers files."),
    pattern: str = typer.Option("", help="new_data: file name glob, e.g. '*.rnx'."),
    after: str = typer.Option("", help="run_finished: the pipeline whose runs' ends fire this one."),
    on: list[str] = typer.Option([], help="run_finished: succeeded and/or failed (default succeeded)."),
    map_: list[str] = typer.Option(
        [], "--map", help="run_finished: INPUT=OUTPUT (this input <- its output)."
    ),
    name: str = typer.Option(""),
    param: list[str] = typer.Option([], "--input-value", "-i", help="Fixed input NAME=VALUE."),
    output_dir: str = typer.Option("me"),
) -> None:
    """Create a trigger. A webhook's secret is printed this once: keep it."""
    config: dict = {}
    if kind == "new_data":
        config = {"watch": watch, "mode": mode, "window": window, "pattern": pattern}
        if search:
            try:
                config["search"] = json.loads(search)
            except ValueError:
                fail('--search: a JSON object such as \'{"collection": "Demo"}\'')
        if input_name:
            config["input"] = input_name
    elif kind == "run_finished":
        pairs = [m.partition("=") for m in map_]
        if any(not sep for _, sep, _ in pairs):
            fail("--map: INPUT=OUTPUT")
        config = {"after": after, "map": {i: o for i, _, o in pairs}, **({"on": on} if on else {})}
    body = {"kind": kind, "config": config, "name": name, "inputs": _parse_inputs(param, None)}
    body["output_dir"] = output_dir
    with _client() as client:
        made = _call(lambda: client.post(f"/api/v1/pipelines/{pipeline}/triggers", body))
    console.print(f"trigger [bold]{made['id']}[/] ({made['kind']}) on {made['pipeline']}", highlight=False)
    if made.get("secret"):
        typer.echo(f"hook URL: {client.url}{made['hook_url']}")
        typer.echo(f"secret (shown once): {made['secret']}")


def _set_paused(trigger_id: int, paused: bool) -> None:
    with _client() as client:
        done = _call(
            lambda: client.request("PATCH", f"/api/v1/triggers/{trigger_id}", json={"paused": paused})
        )
    console.print(f"trigger {trigger_id}: {'paused' if done['paused'] else 'active'}")


@triggers_app.command("pause")
def triggers_pause(trigger_id: int) -> None:
    _set_paused(trigger_id, True)


@triggers_app.command("resume")
def triggers_resume(trigger_id: int) -> None:
    """Fires again for what happens from now on (not for what happened while paused)."""
    _set_paused(trigger_id, False)


@triggers_app.command("rm")
def triggers_rm(trigger_id: int) -> None:
    with _client() as client:
        _call(lambda: client.delete(f"/api/v1/triggers/{trigger_id}"))
    console.print(f"trigger {trigger_id} deleted")


@triggers_app.command("test")
def triggers_test(
    trigger_id: int,
    file: str = typer.Option("", help="new_data: fire with this file, e.g. me/incoming/x.rnx."),
    param: list[str] = typer.Option([], "--input-value", "-i", help="Input NAME=VALUE."),
) -> None:
    """Fire now, as the event would."""
    with _client() as client:
        body = {"inputs": _parse_inputs(param, None), "file": file}
        fired = _call(lambda: client.post(f"/api/v1/triggers/{trigger_id}/test", body))
    if fired["run_id"]:
        console.print(f"run [bold]{fired['run_id']}[/] queued", highlight=False)
    else:
        fail(f"no run: {fired['skipped']}")
