"""`PipelineEngine`: how a worker executes one run. Implementations: `cwltool` (warm, in-process) and
`toil` (`toil-cwl-runner` as a subprocess). Contract suite: tests/contracts/test_pipeline_engine_contract.py.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datalabs.clusters.settings import ClusterSettings
from datalabs.sandbox.policy import Policy

SUCCEEDED, FAILED, INFRA = "succeeded", "failed", "infrastructure"


@dataclass
class RunSpec:
    """Everything an engine needs for one run; paths are on the host."""

    run_id: str
    version_id: int
    document: Path  # the packed CWL document (JSON)
    job: dict[str, Any]  # inputs, file locations as file:// URIs of readable host paths
    workdir: Path  # private to this run: the engine keeps temporary files under it
    outdir: Path  # where the final outputs are collected (created by the engine)
    log: Path  # the run's log: the engine appends its own and the tools' output here
    sandbox: bool = True
    parallel: bool = False
    # Whose run it is (its tools run as that user's identity) and what network a tool that declares
    # NetworkAccess gets (sandbox/policy.py); others always get their own loopback only.
    policy: Policy = field(default_factory=Policy)
    # A Slurm cluster the run's jobs go to (pipelines/placement.py); None: this host, as always.
    cluster: ClusterSettings | None = None
    # Variables every tool gets (MLflow tracking, pipelines/tracking.py); with them `policy.api` lets the
    # tools reach the platform's API socket, as labs do.
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    state: str  # succeeded | failed (the pipeline failed) | infrastructure (the engine itself broke)
    reason: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)  # the CWL output object, locations under outdir


class Handle:
    """An engine's token for a submitted run."""


class PipelineEngine(ABC):
    name = "abstract"

    @abstractmethod
    def submit(self, spec: RunSpec) -> Handle:
        """Start the run and return at once; never raises for a failing pipeline (poll reports it)."""

    @abstractmethod
    def poll(self, handle: Handle) -> Result | None:
        """None while running, then the Result (the same one on every later call)."""

    @abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Stop the run's processes; poll then returns a failed Result soon after. Idempotent."""

    def outputs(self, handle: Handle) -> dict[str, Any]:
        """The CWL output object of a finished run (empty before it succeeded)."""
        result = self.poll(handle)
        return result.outputs if result is not None else {}

    def wait(self, handle: Handle, timeout: float) -> Result | None:
        """Poll until the run ends or `timeout` seconds pass. Engines may override to wake sooner."""
        deadline = time.monotonic() + timeout
        while (result := self.poll(handle)) is None and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return result

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release what the engine keeps between runs (caches, pools)."""


def get_engine(name: str) -> PipelineEngine:
    """The engine registered as `name` in the `datalabs.engines` entry points (cwltool and toil built in)."""
    from datalabs.plugins import load

    if (cls := load("datalabs.engines").get(name)) is not None:
        return cls()
    if name == "cwltool":
        from datalabs.pipelines.engines.cwltool import CwltoolEngine

        return CwltoolEngine()
    if name == "toil":
        from datalabs.pipelines.engines.toil import ToilEngine

        return ToilEngine()
    raise LookupError(f"no pipeline engine named '{name}'")
