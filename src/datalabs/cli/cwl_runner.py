"""`datalabs cwl-runner [--outdir D] TOOL.cwl [JOB.yml]` in the Typer application (for `datalabs --help`
and callers of `datalabs.cli.main.app`): the arguments go unchanged to the light runner,
`datalabs.cwlrunner.main`, which the `datalabs` entry point also calls directly."""

from __future__ import annotations

import typer

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def cwl_runner(ctx: typer.Context) -> None:
    """Run a CWL tool or workflow on the platform and print its output object (cwltool-compatible):
    datalabs cwl-runner [--outdir D] [--quiet] [--engine cwltool|toil] TOOL.cwl[#id] [JOB.yml]."""
    from datalabs.cwlrunner.main import main

    raise typer.Exit(main(list(ctx.args)))
