"""The `Builder` contract: turn a datalab's sources and recipe into an environment its labs run in.

The platform calls `key(request)` to name the environment, then `build(request, log)` in a worker
thread. Environments are content-addressed: two versions whose normalised recipes are equal share one
environment, so rebuilding unchanged requirements is a cache hit. Implementations: `uv` (a virtual
environment layered on the platform's JupyterLab, for the local runtime); a container-image builder
(repo2docker, buildah) for Kubernetes clusters can implement the same contract. Every implementation
passes `tests/contracts/test_builder_contract.py`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from datalabs.sandbox.bwrap import Mount
from datalabs.sandbox.policy import Policy

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    sources: Path  # read-only input: the version's immutable sources
    requirements: list[str]  # normalised requirement lines (pip/uv requirements-file syntax)
    requirements_file: Path | None = None  # the sources' requirements.txt, if any (relative paths in it)
    label: str = ""  # e.g. "myapp 0.1.0-2", for logs and kernel names
    # Whose build this is: its steps run as that user's sandbox identity, with its network and limits,
    # and environments and download caches are shared only within one `tenant` (code run by one
    # author's build must never end up in another author's environment).
    policy: Policy = field(default_factory=Policy)
    tenant: str = ""
    # Local wheel directories the installer also looks in (builder.find_links), read-only to the build.
    find_links: tuple[Path, ...] = ()


@dataclass(frozen=True)
class BuildResult:
    env: Path  # where the environment lives (immutable once built)
    key: str
    cached: bool  # True when an existing environment with the same key was reused
    seconds: float = 0.0


@dataclass(frozen=True)
class LabEnvironment:
    """What a lab of a built version needs on top of its datalab's runtime."""

    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


class BuildError(Exception):
    """The build failed; `line` is the line of the tool's output that says why (shown to the author)."""

    def __init__(self, message: str, line: str = ""):
        super().__init__(message)
        self.message, self.line = message, line or message


class Builder(abc.ABC):
    name: ClassVar[str]

    def __init__(self, envs_dir: Path):
        self.envs_dir = envs_dir

    @abc.abstractmethod
    def key(self, request: BuildRequest) -> str:
        """A stable hex digest of everything that decides the environment's content: equal for recipes
        that differ only in comments, blank lines or spacing; different when any requirement or wheel
        directory (`find_links`) changes."""

    @abc.abstractmethod
    def build(self, request: BuildRequest, log: Log) -> BuildResult:
        """Build (or reuse) the environment for `request`, calling `log` with each output line as it
        comes. Blocking. Reads only `request.sources` (and the network for packages), writes only the
        environment's own directory (and the builder's download cache); a failure leaves no environment
        under the final name and raises `BuildError` with the failing line."""

    @abc.abstractmethod
    def lab_environment(self, env: Path) -> LabEnvironment:
        """Mounts and environment variables that make a lab use `env` (e.g. as its default kernel)."""

    def exists(self, key: str) -> bool:
        return (self.envs_dir / key / ".complete").is_file()


def get_builder(name: str, envs_dir: Path) -> Builder:
    from datalabs import plugins
    from datalabs.builder.uv import UvBuilder

    builders: dict[str, type[Builder]] = {"uv": UvBuilder, **plugins.load("datalabs.builders")}
    if name not in builders:
        raise RuntimeError(f"builder '{name}' is not installed (have: {', '.join(sorted(builders))})")
    return builders[name](envs_dir)
