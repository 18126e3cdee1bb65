"""Environments of catalogue datalabs (built-in and site definitions) whose runtime says
`environment: requirements.txt`, built by the platform's own builder (`UvBuilder`) as the platform.

Which need a build: a version whose requirements (its folder's `requirements.txt`, then
`runtime.requirements`) still hold something once what the platform provides is left out (see
`provided_by_platform`). The rest run on the platform's environment as before.

State is in files, no table: `<home>/catalogue/builds/<name>/<version>/` holds `status.json` (the last
or current build, written whole or not at all), `build.log` and `.lock` (held while a build runs: one
build per datalab version at a time, across processes; a status that says "building" while nobody holds
the lock was cut short). The environment itself is the builder's `<home>/envs/<key>`, content-addressed
by requirements, so a second build of unchanged requirements is a no-op reuse, and tenant "platform":
nothing a user's build ran can end up in it.

The catalogue's stored metadata of such a version carries `_build` (builder, env, key, state, error), a
mirror of these files made by `mirror` at every catalogue load and after every build: availability
(catalogue.service) and lab start (labs.manager) read it like an app version's `_build`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.machinery
import importlib.metadata
import json
import logging
import os
import re
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from packaging.requirements import InvalidRequirement, Requirement

from datalabs import redaction
from datalabs.builder import wheels
from datalabs.builder.base import Builder, BuildError, BuildRequest, get_builder
from datalabs.builder.meta import REQUIREMENTS_FILE, normalise
from datalabs.builder.service import envs_dir
from datalabs.builder.uv import platform_site
from datalabs.catalogue.schema import DatalabMeta
from datalabs.config import Settings
from datalabs.errors import Conflict
from datalabs.sandbox import identity
from datalabs.sandbox.policy import Policy

log = logging.getLogger(__name__)

BUILDER = "uv"
TENANT = "platform"
ACTIVE = ("queued", "building")
# The lab's server is always the platform's JupyterLab: a built environment is layered on it and gives
# the lab its kernel (see builder/uv.py). A definition naming a JupyterLab version documents which
# JupyterLab it was made for, as a built app's inherited base requirements do (builder/meta.recipe).
LAB_SERVER_PACKAGES = frozenset({"jupyterlab"})
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
LOG_TAIL = 400


@dataclass(frozen=True)
class Plan:
    """What building one version takes: the builder's request, its environment's key, and the
    requirement lines left out because the platform provides them (with what it has)."""

    name: str
    version: str
    request: BuildRequest
    key: str
    provided: tuple[str, ...] = ()


@dataclass
class Status:
    """One datalab version's last (or current) build."""

    name: str
    version: str
    state: str = "never"  # never | queued | building | built | failed | interrupted
    key: str = ""
    env: str = ""
    error: str = ""  # the build error's line
    cached: bool = False
    requested_by: str = ""
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def as_dict(self) -> dict:
        return {**asdict(self), "active": self.active}


# ---- what to build ---------------------------------------------------------------------------------


def builder(settings: Settings) -> Builder:
    return get_builder(BUILDER, envs_dir(settings))


def provided_by_platform(line: str) -> str:
    """Why requirement `line` needs no installing ("numpy 2.4.6: already in the platform's environment"),
    or "" when it does: the platform's environment already has a version it accepts, it is the lab
    server's package, or its marker excludes this platform. Options and URLs always go to the builder."""
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return ""
    if req.marker is not None and not req.marker.evaluate():
        return f"{req.name}: not needed on this platform ({req.marker})"
    if req.url or req.extras:
        return ""
    try:
        have = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return ""
    if req.name.lower() in LAB_SERVER_PACKAGES:
        return f"{req.name} {have}: the lab runs the platform's JupyterLab"
    if req.specifier.contains(have, prereleases=True):
        return f"{req.name} {have}: already in the platform's environment"
    return ""


def plan(settings: Settings, meta: DatalabMeta, folder: Path) -> Plan | None:
    """The build `meta` (defined in `folder`) needs, or None when it runs on the platform's environment."""
    rt = meta.runtime
    if rt.environment != REQUIREMENTS_FILE:
        return None
    req_file = folder / REQUIREMENTS_FILE
    in_file = normalise(req_file.read_text(errors="replace").splitlines()) if req_file.is_file() else []
    provided, extra = [], []
    for line in normalise(rt.requirements):
        if line in in_file:
            continue
        why = provided_by_platform(line)
        (provided if why else extra).append(why or line)
    if not in_file and not extra:
        return None
    s = settings.sandbox
    # Not any user's: user id 0 is no account's (ids start at 1), so the build runs as a uid of its own.
    who = identity.of(s.uid_base, s.team_gid_base, 0, "platform-build")
    request = BuildRequest(
        sources=folder,
        requirements=in_file + extra,
        requirements_file=req_file if req_file.is_file() else None,
        label=f"{meta.name} {meta.version}",
        policy=Policy.of(settings, who, settings.builder.network, pids_max=s.tool_pids_max),
        tenant=TENANT,
        find_links=wheels.find_links(settings),
    )
    return Plan(meta.name, meta.version, request, builder(settings).key(request), tuple(provided))


# ---- state files -----------------------------------------------------------------------------------


def _part(text: str) -> str:
    # Names follow NAME_RE; versions are free text up to 64 characters: never a path of their own.
    if _SAFE_PART.match(text) and text not in (".", ".."):
        return text
    return "v-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def build_dir(settings: Settings, name: str, version: str) -> Path:
    return settings.home / "catalogue" / "builds" / _part(name) / _part(version)


def log_path(settings: Settings, name: str, version: str) -> Path:
    return build_dir(settings, name, version) / "build.log"


def write_status(settings: Settings, status: Status) -> None:
    folder = build_dir(settings, status.name, status.version)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "status.json"
    tmp = path.with_name(f".status.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(asdict(status)))
    os.replace(tmp, path)


def read_status(settings: Settings, name: str, version: str) -> Status:
    """The version's last recorded build; one recorded as active while nobody builds it was cut short."""
    folder = build_dir(settings, name, version)
    try:
        data = json.loads((folder / "status.json").read_text())
        status = Status(**{k: v for k, v in data.items() if k in Status.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return Status(name, version)
    if status.active and not _locked(folder / ".lock"):
        status.state, status.error = "interrupted", "the build was stopped before it finished"
    return status


def read_log(settings: Settings, name: str, version: str, tail: int = LOG_TAIL) -> list[str]:
    try:
        with open(log_path(settings, name, version), encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()[-tail:]
    except OSError:
        return []


def _locked(path: Path) -> bool:
    try:
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def claim(settings: Settings, name: str, version: str) -> IO:
    """The version's build lock (hold it for the whole build, close it after); Conflict when a build of
    it runs already, in this process or another."""
    folder = build_dir(settings, name, version)
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / ".lock", "a")  # noqa: SIM115 (handed to the build, which closes it)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise Conflict(f"'{name}' {version} is already being built", code="build_running") from None
    return lock


def keys_in_use(settings: Settings) -> set[str]:
    """Environment keys catalogue builds recorded (garbage collection keeps these environments)."""
    root = settings.home / "catalogue" / "builds"
    keys = set()
    for path in root.glob("*/*/status.json"):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            keys.add(json.loads(path.read_text()).get("key", ""))
    return keys - {""}


# ---- building --------------------------------------------------------------------------------------


def queue(settings: Settings, p: Plan, by: str) -> Status:
    """Record a build as queued (its lock held by the caller), with an empty log: a reader never takes
    the previous build's log for this one's."""
    status = Status(p.name, p.version, "queued", key=p.key, requested_by=by, queued_at=time.time())
    write_status(settings, status)
    log_path(settings, p.name, p.version).write_text("")
    return status


def build(
    settings: Settings,
    p: Plan,
    lock: IO,
    by: str,
    say: Callable[[str], None] = lambda _: None,
    started: Callable[[], None] = lambda: None,
) -> Status:
    """Build (or reuse) `p`'s environment while holding `lock` (from `claim`; closed here). Every line
    goes to the build log and to `say`; `started` is called once the status says "building". Never
    raises for a failed build: the status says why."""
    status = read_status(settings, p.name, p.version)
    if status.key != p.key or not status.queued_at:
        status = Status(p.name, p.version, key=p.key, requested_by=by, queued_at=time.time())
    status.state, status.started_at, status.error, status.env = "building", time.time(), "", ""
    status.cached, status.finished_at = False, None
    write_status(settings, status)
    try:
        started()
        with open(log_path(settings, p.name, p.version), "w", encoding="utf-8", buffering=1) as out:

            def line(text: str) -> None:
                out.write(text + "\n")
                say(text)

            _run(settings, p, status, line)
    finally:
        status.finished_at = time.time()
        write_status(settings, status)
        lock.close()
    return status


def _run(settings: Settings, p: Plan, status: Status, say: Callable[[str], None]) -> None:
    say(f"Building the environment of {p.name} {p.version} with the '{BUILDER}' builder")
    for why in p.provided:
        say(f"Not installed, {why}")
    try:
        result = builder(settings).build(p.request, say)
    except (BuildError, RuntimeError, OSError) as exc:
        reason = exc.line if isinstance(exc, BuildError) else str(exc)
        say(f"BUILD FAILED: {reason}")  # the log is for administrators: the whole line
        # Everyone reads the reason in the catalogue: uv quotes the server's paths (the datalab's folder).
        status.state, status.error = "failed", redaction.platform(settings)(reason)
        return
    except Exception as exc:  # a bug must still end the build in a clear state
        log.exception("build of %s %s crashed", p.name, p.version)
        say(f"BUILD FAILED: internal error: {exc}")
        status.state, status.error = "failed", f"internal error during the build: {exc}"
        return
    status.state, status.env, status.cached = "built", str(result.env), result.cached
    say("BUILD SUCCEEDED" + (" (requirements unchanged: environment reused)" if result.cached else ""))


# ---- the catalogue's mirror ------------------------------------------------------------------------


def mirror(settings: Settings, meta: DatalabMeta, folder: Path) -> dict | None:
    """The `_build` entry stored with a catalogue version: None when it needs no build; else its
    environment when built, or the state of its last attempt for these requirements."""
    p = plan(settings, meta, folder)
    if p is None:
        return None
    entry = {"builder": BUILDER, "env": "", "key": p.key, "state": "never", "error": ""}
    if builder(settings).exists(p.key):
        return {**entry, "env": str(envs_dir(settings) / p.key), "state": "built"}
    status = read_status(settings, p.name, p.version)
    if status.key == p.key:  # an attempt for other (older) requirements says nothing about these
        entry |= {"state": status.state, "error": status.error}
    return entry


def unbuilt_reason(build: dict) -> str:
    """Why a version whose `_build` has no environment cannot be launched yet."""
    state = build.get("state")
    if state in ACTIVE:
        return "its Python environment is being built"
    if state in ("failed", "interrupted"):
        return f"its Python environment could not be built: {build.get('error') or 'no reason given'}"
    return "its Python environment is not built yet (an administrator can build it on the Catalogue page)"


def missing_in(env: Path, packages: list[str]) -> list[str]:
    """Those of `packages` a kernel of the built environment `env` could not import."""
    site = sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)})
    paths = [site, *platform_site()]
    return [p for p in packages if importlib.machinery.PathFinder.find_spec(p, paths) is None]
