"""What a lab's Slurm job runs on its compute node: `python -m datalabs.runtimes.slurm_job SPEC.json`.

The job starts the SAME sandboxed lab `LocalRuntime` starts on the platform's host (bubblewrap, cgroup,
network namespace, the lab's own uid), from the `LabSpec` the platform wrote as JSON beside the lab's
log, then waits for it to end. Slurm's signals reach it because the job script `exec`s this module:
SIGTERM (`scancel --batch --signal=TERM`) stops the lab gracefully, SIGINT at once; either way its
cgroup and network namespace are released before the job ends. The job's exit status is the lab's
(a lab killed by signal N exits 128+N, as a shell would say it), so Slurm records it.

The spec travels as JSON, never pickle: the file is the platform's (root's, 0600), but a format that
can only describe data keeps it so. A start failure is printed as one line `datalabs: <reason>` (the
job's output is the lab's log), which the platform quotes as the reason.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datalabs.runtimes.base import DesktopApp, LabSpec, Mount, StartError
from datalabs.sandbox.policy import Policy

REASON_PREFIX = "datalabs: "
READY_LINE = f"{REASON_PREFIX}the lab is ready"  # what the platform waits for before it opens a desktop lab


def spec_to_json(spec: LabSpec) -> str:
    return json.dumps(asdict(spec), default=str)


def spec_from_json(text: str) -> LabSpec:
    data: dict[str, Any] = json.loads(text)
    policy = data.pop("policy")
    return LabSpec(
        **{
            **data,
            "runtime_dir": Path(data["runtime_dir"]),
            "log_path": Path(data["log_path"]),
            "mounts": [_mount(m) for m in data["mounts"]],
            "apps": tuple(DesktopApp(a["name"], tuple(a["command"]), a["autostart"]) for a in data["apps"]),
            "policy": Policy.from_dict(policy),
        }
    )


def _mount(m: dict[str, Any]) -> Mount:
    beneath = Path(m["beneath"]) if m.get("beneath") else None
    return Mount(Path(m["source"]), m["target"], bool(m["readonly"]), beneath)


def exit_status(code: int | None) -> int:
    """A lab's poll() code as a process exit status: -N (killed by signal N) becomes 128+N."""
    if code is None:
        return 1
    return 128 + (-code & 0x7F) if code < 0 else min(code, 255)


async def run(spec: LabSpec) -> int:
    from datalabs.runtimes.local import LocalRuntime  # the node's sandbox: the platform's own code

    began = time.monotonic()
    lab = LocalRuntime()
    stop_now: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    for sig, now in ((signal.SIGTERM, False), (signal.SIGINT, True)):
        loop.add_signal_handler(sig, lambda now=now: stop_now.done() or stop_now.set_result(now))
    starting = asyncio.ensure_future(lab.start(spec))
    await asyncio.wait([starting, stop_now], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # cancelled while starting: end what was started
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await lab.stop(now=True)
        return exit_status(-signal.SIGTERM)
    try:
        starting.result()
        forward = await _serve_port(spec, began) if spec.callback_token else None
    except StartError as exc:
        print(f"{REASON_PREFIX}{exc}", file=sys.stderr, flush=True)
        await lab.stop(now=True)  # no-op when the start failed; ends a lab whose port could not be served
        return exit_status(await lab.poll()) or 1
    print(READY_LINE, file=sys.stderr, flush=True)
    while not stop_now.done() and await lab.poll() is None:
        await asyncio.wait([stop_now], timeout=0.5)
    if forward is not None:
        await forward.close()
    await lab.stop(now=stop_now.result() if stop_now.done() else True)  # also releases cgroup and netns
    # Stopped because the platform asked (scancel): the job did what it was for; Slurm records COMPLETED,
    # not FAILED for a lab whose server exits non-zero on SIGTERM (a walltime stays TIMEOUT all the same).
    return 0 if stop_now.done() else exit_status(await lab.poll())


async def _serve_port(spec: LabSpec, began: float):
    """Endpoint "port": forward a TCP port of this node to the lab's socket and report the port to the
    platform (slurm_forward.py); StartError if either fails."""
    from datalabs.clusters.settings import port_bounds
    from datalabs.runtimes import slurm_forward

    forward = slurm_forward.PortForward(*slurm_forward.lab_socket(spec))
    try:
        port = await forward.start(slurm_forward.node_address(), port_bounds(spec.port_range))
        await slurm_forward.report_port(spec, port, began + spec.start_timeout)
    except (OSError, slurm_forward.ReportFailed) as exc:
        await forward.close()
        raise StartError(f"the lab's port could not be served: {exc}") from None
    return forward


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m datalabs.runtimes.slurm_job SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = spec_from_json(Path(argv[0]).read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{REASON_PREFIX}cannot read the lab's spec {argv[0]}: {exc}", file=sys.stderr, flush=True)
        return 1
    return asyncio.run(run(spec))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
