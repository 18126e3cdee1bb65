"""`datalabs cwl-runner [--outdir D] TOOL.cwl [JOB.yml]`: the CWL runner interface (as cwltool's), executed
through the platform: the document is registered (once per content), local input files are uploaded to
`me/.cwl-runner/<job>/`, the run is submitted and followed, outputs are downloaded into the output folder,
and the output object is printed as JSON. Exit codes: 0 success, 1 failure, 33 unsupported requirement.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import typer

EXIT_UNSUPPORTED = 33


def cwl_runner(
    tool: Path = typer.Argument(..., help="The CWL document (tool or workflow)."),
    job: Path = typer.Argument(None, help="The job order (inputs) as YAML or JSON."),
    outdir: Path = typer.Option(Path("."), "--outdir", help="Where outputs are written."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not copy the run's log to stderr."),
    timeout: float = typer.Option(86400, help="Seconds to wait for the run."),
) -> None:
    """Run TOOL with JOB on the platform and print the output object (cwltool-compatible)."""
    from datalabs.client import ApiError, Client, NotConfigured, RunFailed
    from datalabs.errors import Invalid
    from datalabs.pipelines.documents import Unsupported, load_file

    try:
        document = load_file(tool.resolve(), tool.name)  # the same checks as the server's, before uploading
    except Unsupported as exc:
        _die(exc.message, EXIT_UNSUPPORTED)
    except Invalid as exc:
        _die(exc.message, 1)
    try:
        order = _load_job(job)
        with Client(timeout=120) as client:
            name = "cwl-runner-" + document.digest[:12]
            try:
                client.post(
                    "/api/v1/pipelines",
                    {"name": name, "cwl": json.dumps(document.packed), "filename": tool.name, "version": "1"},
                )
            except ApiError as exc:
                if exc.code != "pipeline_exists":
                    raise
            base = job.resolve().parent if job else Path.cwd()
            job_id = hashlib.sha256(json.dumps(order, sort_keys=True, default=str).encode()).hexdigest()[:12]
            inputs = _upload(client, order, base, f"me/.cwl-runner/{job_id}")
            run = client.pipelines.get(name).submit(inputs)
            try:
                run.wait(timeout)
            except RunFailed:
                if not quiet:
                    sys.stderr.write(run.logs() or "")
                _die(f"run {run.id} {run.state}: {run.info.get('reason', '')[-500:]}", 1)
            if not quiet:
                sys.stderr.write(run.logs() or "")
            outputs = _download(client, run.outputs(), outdir.resolve())
    except NotConfigured as exc:
        _die(str(exc), 1)
    except ApiError as exc:
        _die(exc.message, EXIT_UNSUPPORTED if exc.code == "unsupported_requirement" else 1)
    except Invalid as exc:  # the job order's file (bounded YAML)
        _die(exc.message, 1)
    except (OSError, ValueError) as exc:
        _die(str(exc), 1)
    typer.echo(json.dumps(outputs, indent=4))


def _die(message: str, code: int):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load_job(job: Path | None) -> dict[str, Any]:
    if job is None:
        return {}
    from datalabs.sandbox import parsing

    data = parsing.read_yaml(job, str(job), parsing.LOCAL) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{job}: the job order must be a mapping of input names to values")
    return data


def _upload(client, value: Any, base: Path, folder: str) -> Any:
    """Local File/Directory inputs uploaded into the workspace, replaced by their references."""
    if isinstance(value, dict) and value.get("class") in ("File", "Directory") and "contents" not in value:
        where = value.get("location") or value.get("path")
        if where is None:
            return value
        local = (base / where.removeprefix("file://")).resolve()
        ref = f"{folder}/{local.name}"
        if value["class"] == "File":
            client.upload(ref, local.read_bytes())
        else:
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                client.upload(f"{ref}/{path.relative_to(local)}", path.read_bytes())
        rest = {k: v for k, v in value.items() if k not in ("location", "path", "secondaryFiles")}
        return {**rest, "location": ref}
    if isinstance(value, dict):
        return {k: _upload(client, v, base, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_upload(client, v, base, f"{folder}/{i}") for i, v in enumerate(value)]
    return value


def _download(client, value: Any, outdir: Path) -> Any:
    """Output files fetched from the workspace into `outdir`; locations become local file:// URIs."""
    if isinstance(value, dict) and value.get("class") == "File" and "location" in value:
        target = outdir / value["basename"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(client.download(value["location"]))
        return {**value, "location": target.as_uri(), "path": str(target)}
    if isinstance(value, dict) and value.get("class") == "Directory" and "location" in value:
        target = outdir / value["basename"]
        listing = [_download(client, item, target) for item in value.get("listing", [])]
        target.mkdir(parents=True, exist_ok=True)
        return {**value, "location": target.as_uri(), "path": str(target), "listing": listing}
    if isinstance(value, dict):
        return {k: _download(client, v, outdir) for k, v in value.items()}
    if isinstance(value, list):
        return [_download(client, v, outdir) for v in value]
    return value
