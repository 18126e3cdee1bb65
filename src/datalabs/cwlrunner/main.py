"""`datalabs cwl-runner [options] TOOL[#id] [JOB]`: the CWL runner interface (as cwltool's), executed by
the platform.

1. The document and what it references are sent as they are (`bundle`) and registered once per content as
   the pipeline `cwl-runner-<digest>`: the platform's warm worker validates and packs them.
2. The job's local files are uploaded into `me/.cwl-runner/<job>/` (`job`), the run is submitted, and its
   end awaited with one long-polling request (`GET /api/v1/runs/{id}?wait=`).
3. The output folder is fetched into `--outdir` and the output object printed as cwltool prints it.

Exit codes as cwltool's: 0 success, 1 failure (invalid document or job, failed run), 33 a requirement the
platform does not support. Only the standard library (and PyYAML for YAML jobs) is imported: the command
is started once per run, so its own start-up is kept to a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_UNSUPPORTED = 33
FINAL = ("succeeded", "failed", "cancelled")
IGNORED_FLAGS = ("--no-container", "--relax-path-checks", "--disable-color", "--parallel", "--strict")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datalabs cwl-runner",
        description="Run a CWL tool or workflow on the platform and print its output object (as cwltool).",
    )
    p.add_argument("tool", help="the CWL document (tool or workflow), optionally with #id")
    p.add_argument("job", nargs="?", help="the job order (inputs) as YAML or JSON; '-' for stdin")
    p.add_argument("--outdir", default=".", help="where outputs are written (default: here)")
    p.add_argument("--quiet", action="store_true", help="do not copy the run's log to stderr")
    p.add_argument("--engine", default=None, help="cwltool (default: the pipeline's) or toil")
    p.add_argument("--timeout", type=float, default=86400, help="seconds to wait for the run")
    p.add_argument("--debug", "--verbose", action="store_true", help="more detail on errors")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a not in IGNORED_FLAGS]
    if "--version" in argv:
        from datalabs import __version__

        print(f"datalabs cwl-runner {__version__}")
        return 0
    args, extra = parser().parse_known_args(argv)
    from datalabs.cwlrunner import bundle, job, outputs
    from datalabs.cwlrunner.wire import ApiError, Connection, NotConfigured, credentials

    try:
        conn = Connection(*credentials())
        docs = bundle.gather(args.tool)
        order, base = job.load(args.job)
        order.update(_cli_inputs(extra))
        order = job.normalise(order)
        name = "cwl-runner-" + docs.digest[:16]
        job_id = hashlib.sha256(docs.digest.encode() + json.dumps(order, sort_keys=True).encode()).hexdigest()
        uploader = job.Uploader(conn, f"me/.cwl-runner/{job_id[:16]}", docs.mentions(b"secondaryFiles"))
        body: dict[str, Any] = {"inputs": uploader.inputs(order, base), "ignore_unknown_inputs": True}
        if args.engine:
            body["engine"] = args.engine
        run = _submit(conn, name, docs, body)
        run = _wait(conn, run, args.timeout)
        if not args.quiet or run["state"] != "succeeded":
            _copy_log(conn, run["id"])
        if run["state"] != "succeeded":
            reason = run.get("reason") or run["state"]
            _error(f"run {run['id']} {run['state']}: {reason[-1000:]}")
            return EXIT_UNSUPPORTED if reason.startswith("unsupported requirement") else 1
        outdir = Path(args.outdir).absolute()
        result = run.get("outputs") or {}
        if outputs.has_files(result) and run.get("output_dir"):
            outputs.fetch(conn, run["output_dir"], outdir)
        text = outputs.dumps(outputs.localise(result, run.get("output_dir", ""), outdir))
    except NotConfigured as exc:
        return _error(str(exc))
    except ApiError as exc:
        _error(exc.message)
        return EXIT_UNSUPPORTED if exc.code == "unsupported_requirement" else 1
    except (OSError, ValueError) as exc:
        return _error(str(exc))
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape") + b"\n")
    sys.stdout.flush()
    return 0


def _submit(conn, name: str, docs, body: dict[str, Any]) -> dict[str, Any]:
    """The run, registering the pipeline first when this content is new."""
    from datalabs.cwlrunner.wire import ApiError

    path = f"/api/v1/pipelines/{name}/runs"
    try:
        return conn.json("POST", path, body)
    except ApiError as exc:
        if exc.status != 404 or exc.code != "pipeline_not_found":
            raise
    try:
        conn.json("POST", "/api/v1/pipelines", {"name": name, "bundle": docs.as_json(), "version": "1"})
    except ApiError as exc:
        if exc.code != "pipeline_exists":  # registered meanwhile by a twin command
            raise
    return conn.json("POST", path, body)


def _wait(conn, run: dict[str, Any], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while run["state"] not in FINAL:
        left = deadline - time.monotonic()
        if left <= 0:
            conn.json("POST", f"/api/v1/runs/{run['id']}/cancel")
            raise ValueError(f"run {run['id']} still {run['state']} after {timeout:.0f} s: cancelled")
        run = conn.json("GET", f"/api/v1/runs/{run['id']}?wait={min(left, 30.0):.3f}")
    return run


def _copy_log(conn, run_id: str) -> None:
    from datalabs.cwlrunner.wire import ApiError

    try:
        log = conn.get_bytes(f"/api/v1/runs/{run_id}/logs")
    except ApiError:
        return
    sys.stderr.buffer.write(log)
    sys.stderr.flush()


def _cli_inputs(extra: list[str]) -> dict[str, Any]:
    """Inputs given after the document as `--name value` or `--name=value` (`--flag` alone: true)."""
    from datalabs.cwlrunner import yaml12

    found: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise ValueError(f"unexpected argument '{arg}'")
        name, eq, value = arg[2:].partition("=")
        if not eq and (i + 1 >= len(extra) or extra[i + 1].startswith("--")):
            found[name] = True
        else:
            if not eq:
                i += 1
                value = extra[i]
            found[name] = yaml12.loads(value) if value else ""
        i += 1
    return found


def _error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
