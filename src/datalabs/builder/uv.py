"""`UvBuilder`: a virtual environment made with uv, layered on the platform's JupyterLab environment.

The environment is a plain venv of the platform's interpreter whose `site-packages` holds the
datalab's requirements and a `.pth` line adding the platform's `site-packages` after them: the
datalab's packages win, JupyterLab and ipykernel come from underneath. A kernel spec named `python3`
in the environment's `share/jupyter` replaces the default kernel when a lab starts with `JUPYTER_PATH`
pointing there. Every step runs in a sandbox (sandbox/) as the building author's identity, seeing the
sources read-only and only the environment and that author's uv cache writable, reaching the package
index through an outbound network namespace (the host and private ranges unreachable). Environments
and caches are per author (`BuildRequest.tenant`): code a build runs (setup.py, build backends) can
write anything into its environment, so an environment is only ever reused for the author who built it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

from datalabs.builder.base import Builder, BuildError, BuildRequest, BuildResult, LabEnvironment, Log
from datalabs.builder.meta import normalise
from datalabs.sandbox import fs, launch, network
from datalabs.sandbox.bwrap import NOBODY, Box, Mount, bwrap_path, sandbox_path

RECIPE_VERSION = "uv-1"  # bump when the layout of built environments changes
TIMEOUT = 1800.0
_ERROR_MARKS = ("error:", "×", "╰─▶", "ERROR:", "Because ")


def base_interpreter() -> str:
    return str(Path(getattr(sys, "_base_executable", sys.executable)).resolve())


def platform_site() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


class UvBuilder(Builder):
    name = "uv"

    def cache_dir(self, request: BuildRequest) -> Path:
        return self.envs_dir / ".uv-cache" / (request.tenant or "shared")

    def key(self, request: BuildRequest) -> str:
        doc = {
            "builder": RECIPE_VERSION,
            "python": sys.version,
            "platform": platform_site(),
            "requirements": request.requirements,
            **({"tenant": request.tenant} if request.tenant else {}),
            # Another wheel directory can resolve the same requirements to other files (a CPU PyTorch
            # instead of the index's). Left out when there are none: existing environments keep their keys.
            **({"find_links": [str(d) for d in request.find_links]} if request.find_links else {}),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]

    def build(self, request: BuildRequest, log: Log) -> BuildResult:
        started = time.monotonic()
        key = self.key(request)
        env = self.envs_dir / key
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        # One build per key at a time: a second build of the same recipe waits and then reuses it.
        with open(self.envs_dir / f".{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.exists(key):
                log(f"Requirements unchanged: reusing environment {key}")
                return BuildResult(env, key, True, time.monotonic() - started)
            shutil.rmtree(env, ignore_errors=True)  # a half-built one from a crash
            try:
                self._build(request, env, log)
            except BaseException:
                shutil.rmtree(env, ignore_errors=True)
                raise
            # The author's code is done with it: from now on nobody's sandbox may change it.
            fs.chown_tree(env, 0, 0)
            (env / ".complete").write_text(json.dumps({"requirements": request.requirements}))
        seconds = time.monotonic() - started
        log(f"Environment {key} built in {seconds:.1f} s")
        return BuildResult(env, key, False, seconds)

    def _build(self, request: BuildRequest, env: Path, log: Log) -> None:
        if bwrap_path() is None:
            raise BuildError("bubblewrap (bwrap) is not installed: builds only run sandboxed")
        uv = shutil.which("uv", path=sandbox_path())
        if uv is None:
            raise BuildError("uv is not installed in the platform's environment")
        identity = request.policy.identity or (NOBODY if os.geteuid() == 0 else None)
        for d in (env, self.cache_dir(request)):
            d.mkdir(parents=True, exist_ok=True)
            if identity is not None:
                os.chown(d, identity.uid, identity.gid)
        python = base_interpreter()
        log(f"$ uv venv {env}")
        self._run(request, env, [uv, "venv", "--quiet", "--python", python, str(env)], log)
        site = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
        (site / "_datalabs_platform.pth").write_text("\n".join(platform_site()) + "\n")
        if request.requirements:
            argv = [uv, "pip", "install", "--python", str(env / "bin" / "python")]
            argv += [arg for d in request.find_links for arg in ("--find-links", str(d))]
            extra = request.requirements
            if request.requirements_file is not None:
                # Installed from where it lies: relative paths in it (e.g. --find-links wheels) resolve there.
                argv += ["-r", str(request.requirements_file)]
                in_file = normalise(request.requirements_file.read_text(errors="replace").splitlines())
                extra = [r for r in extra if r not in in_file]
            log("$ uv pip install " + " ".join(argv[5:] + extra))
            argv += extra
            self._run(request, env, argv, log)
        else:
            log("No requirements: the environment is the platform's JupyterLab environment")
        self._kernel(env, request.label)
        log("$ python -c 'import ipykernel'  (the kernel starts in this environment)")
        check = [str(env / "bin" / "python"), "-c", "import ipykernel, sys; print(sys.prefix)"]
        self._run(request, env, check, log)

    def _kernel(self, env: Path, label: str) -> None:
        kernel_dir = env / "share" / "jupyter" / "kernels" / "python3"
        kernel_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "argv": [str(env / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (datalab environment)",
            "language": "python",
            "metadata": {"debugger": True},
        }
        (kernel_dir / "kernel.json").write_text(json.dumps(spec, indent=1))

    def _run(self, request: BuildRequest, env: Path, argv: list[str], log: Log) -> None:
        work = self.envs_dir / f".run-{uuid.uuid4().hex[:12]}"
        work.mkdir(mode=0o700)
        cache = self.cache_dir(request)
        box = Box(
            command=argv,
            identity=request.policy.identity,
            mounts=[
                Mount(request.sources, str(request.sources), readonly=True),
                Mount(env, str(env), readonly=False),
                Mount(cache, str(cache), readonly=False),
                *(Mount(d, str(d), readonly=True) for d in request.find_links),
            ],
            workdir=str(request.sources),
            env={
                "PATH": sandbox_path(),
                "HOME": "/tmp",  # private to the step: nothing a tool drops in HOME lands in the environment
                "UV_CACHE_DIR": str(cache),
                "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1",
                "NO_COLOR": "1",
                "UV_LINK_MODE": "copy",  # the cache and the environment may be on different file systems
                # The host's trust store, not uv's bundled one: sites reach the index through their own
                # TLS proxy or mirror with a local CA far more often than not.
                "UV_NATIVE_TLS": "1",
                "LANG": "C.UTF-8",
                **proxy_environment(),
            },
            hostname="build",
            die_with_parent=True,
            new_session=True,
        )
        try:
            prepared = launch.prepare(f"build-{uuid.uuid4().hex[:12]}", box, request.policy, work)
        except (network.NetworkError, OSError) as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise BuildError(f"the build's sandbox could not be prepared: {exc}") from None
        command = prepared.argv
        lines: list[str] = []
        try:
            proc = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True,
            )
            deadline = time.monotonic() + TIMEOUT
            for line in proc.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                log(line)
                if time.monotonic() > deadline:
                    os.killpg(proc.pid, 9)
                    raise BuildError(f"the build took longer than {TIMEOUT:.0f} s and was stopped")
            code = proc.wait()
        finally:
            prepared.release()
            shutil.rmtree(work, ignore_errors=True)
        if code != 0:
            line = failing_line(lines)
            raise BuildError(f"{Path(argv[0]).name} failed (exit {code}): {line}", line)

    def lab_environment(self, env: Path) -> LabEnvironment:
        return LabEnvironment(
            mounts=[Mount(env, str(env), readonly=True)],
            env={
                "JUPYTER_PATH": str(env / "share" / "jupyter"),  # its python3 kernel shadows the default
                "PATH": f"{env / 'bin'}:{sandbox_path()}",  # terminals get the datalab's python and tools
                "VIRTUAL_ENV": str(env),
            },
        )


def proxy_environment() -> dict[str, str]:
    """The platform's HTTP proxy settings, passed on to builds so they reach the index the host reaches."""
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")
    return {k: v for name in names for k in (name, name.lower()) if (v := os.environ.get(k))}


def failing_line(lines: list[str]) -> str:
    """The line that says why (uv's `error:` / `×` lines and their explanation), else the last line."""
    marked = [i for i, line in enumerate(lines) if line.strip().startswith(_ERROR_MARKS)]
    if not marked:
        return next((line.strip() for line in reversed(lines) if line.strip()), "no output")
    first = marked[0]
    picked = [lines[i].strip() for i in range(first, min(first + 2, len(lines))) if lines[i].strip()]
    return " ".join(picked)[:1000]
