"""The `datalabs` command's entry point. `datalabs cwl-runner ...` goes straight to the light runner
(standard library only: it is started once per CWL run, so Typer, Rich and the HTTP client stack are not
imported for it); everything else goes to the Typer application in `datalabs.cli.main`."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "cwl-runner":
        from datalabs.cwlrunner.main import main as cwl_runner

        raise SystemExit(cwl_runner(sys.argv[2:]))
    from datalabs.cli.main import app

    app()
