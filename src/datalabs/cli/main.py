"""Entry point: `datalabs` alone starts the server."""

from __future__ import annotations

import typer

from datalabs.cli import admin, apps, assets, catalogue, demo, files, labs, pipelines, session, volumes
from datalabs.cli.cwl_runner import CONTEXT, cwl_runner
from datalabs.cli.serve import serve
from datalabs.cli.worker import worker

app = typer.Typer(
    help="Datalabs: bring your questions to the data.", no_args_is_help=False, pretty_exceptions_enable=False
)
app.command()(serve)
app.command()(session.login)
app.command()(session.whoami)
app.command()(worker)
app.command("cwl-runner", context_settings=CONTEXT)(cwl_runner)
app.add_typer(admin.app, name="admin")
app.add_typer(catalogue.app, name="catalogue")
app.add_typer(labs.app, name="labs")
app.add_typer(files.app, name="files")
app.add_typer(volumes.app, name="volumes")
app.add_typer(assets.app, name="assets")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(pipelines.runs_app, name="runs")
app.add_typer(apps.app, name="apps")
app.add_typer(demo.app, name="demo")


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)
