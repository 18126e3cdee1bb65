"""What a CWL run's code runs in: the sandbox of each tool, and of JavaScript expressions.

Tools get the same system view as labs (sandbox/bwrap.py): their inputs bound read-only at their staged
paths, their output and temporary folders writable, nothing else of the host (no platform state, no
other workspace), as the run owner's identity, with their own loopback only — or outbound access when
the tool declares `NetworkAccess` and the operator allows it (`pipelines.tool_network`). bwrap dies with
the worker (`--die-with-parent`), so a killed worker leaves no tool running.

JavaScript expressions (`InlineJavascriptRequirement`) are evaluated by Node.js, which cwltool starts
itself and feeds the expression code. Its `vm` context is no sandbox (`globalThis.constructor.
constructor('return process')()` reaches `child_process`), and cwltool runs inside the platform's
worker, as root: so Node runs in a sandbox too, as the run owner (or nobody), with no network, no
mounts and a small process limit (`SandboxedNode`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cwl_utils.errors import JavascriptException
from cwl_utils.sandboxjs import NodeJSEngine

from datalabs.sandbox import launch
from datalabs.sandbox.bwrap import Box, Mount, bwrap_path
from datalabs.sandbox.policy import Policy

JS_PIDS = 64


def available() -> bool:
    return bwrap_path() is not None


def tool_box(outdir: str, tmpdir: str, readonly: list[tuple[str, str]], env: dict[str, str]) -> Box:
    """The sandbox of one tool writing to `outdir` and `tmpdir` and reading the `(host path, path seen
    by the tool)` pairs of `readonly`; the tool's command is appended to the argv by cwltool."""
    mounts = [Mount(Path(outdir), outdir, readonly=False), Mount(Path(tmpdir), tmpdir, readonly=False)]
    for source, target in sorted(set(readonly)):
        if Path(source).exists():
            mounts.append(Mount(Path(source), target, readonly=True))
    return Box(
        command=[],
        identity=None,
        mounts=mounts,
        workdir=outdir,
        env=env,
        hostname="cwl-tool",
        die_with_parent=True,
        new_session=True,
        command_is_pid_1=True,
    )


JsContext = tuple[Policy | None, Path | None, Callable[[subprocess.Popen], None] | None]


class SandboxedNode(NodeJSEngine):
    """cwl-utils' Node.js engine, with every Node process started in a sandbox. `context()` says, for the
    calling thread, whose policy applies (the run's, or None: nobody), where the sandbox's generated
    files may go (the run's work folder) and whom to hand the process to, so the run's end stops it
    (cwl-utils keeps one Node per thread and never stops it)."""

    def __init__(self, context: Callable[[], JsContext]) -> None:
        super().__init__()
        self._context = context

    def new_js_proc(self, js_text: str, force_docker_pull: bool = False, container_engine: str = "docker"):
        node = shutil.which("nodejs") or shutil.which("node")
        if node is None:
            raise JavascriptException("Node.js is not installed: expressions in this pipeline cannot run")
        policy, workdir, adopt = self._context()
        policy = replace(policy or Policy(), network="none", pids_max=JS_PIDS, api=None)
        box = Box(
            command=[node, "--eval", js_text],
            identity=None,
            mounts=[],
            workdir="/tmp",
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
            hostname="cwl-js",
            die_with_parent=True,
            new_session=True,
        )
        state = (workdir or Path("/run/datalabs")) / f"js-{uuid.uuid4().hex[:8]}"
        prepared = launch.prepare(f"js-{uuid.uuid4().hex[:12]}", box, policy, state)
        try:
            proc = subprocess.Popen(  # noqa: S603 (our argv)
                prepared.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                universal_newlines=True,
                env={"PATH": "/usr/bin:/bin"},
            )
        except OSError as exc:
            prepared.release()
            raise JavascriptException(f"cannot start Node.js in its sandbox: {exc}") from None
        if adopt is not None:
            adopt(proc)
        else:
            self.processes_to_kill.append(proc)
        threading.Thread(target=_release_after, args=(proc, prepared, state), daemon=True).start()
        return proc


def _release_after(proc: subprocess.Popen, prepared: launch.Prepared, state: Path) -> None:
    proc.wait()
    prepared.release()
    shutil.rmtree(state, ignore_errors=True)


def make_private(path: str | Path) -> None:
    """A folder only root can enter (for generated sandbox files)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
