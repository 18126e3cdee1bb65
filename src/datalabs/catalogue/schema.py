"""The `datalab-meta.yml` schema (DESIGN §7): ESA Datalabs' schema.org-style keys plus our `runtime:`.

Dotted keys (`contactPoint.email: x`) and nested maps are both accepted; unknown keys are kept.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
LAB_WORKDIR = "/media/home/my_workspace"  # where every lab's processes start (runtimes.base.LabSpec.workdir)
NOTEBOOKS_MOUNT = "/media/notebooks"  # a datalab's own folder (its notebooks), read-only in its labs
JUPYTER_ROOT_OPTIONS = (
    "--ServerApp.root_dir",
    "--ServerApp.notebook_dir",
    "--NotebookApp.notebook_dir",
    "--notebook-dir",
)
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "KI": 2**10,
    "MI": 2**20,
    "GI": 2**30,
    "TI": 2**40,
}


def parse_memory(value: str | int) -> int:
    """Bytes from `2G`, `512Mi`, `1.5GB` or a plain number of bytes."""
    if isinstance(value, int):
        return value
    match = _MEMORY_RE.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a memory size such as 512M or 2G")
    return int(float(match[1]) * _UNITS[(match[2] or "").upper()])


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(1, gt=0, le=256)
    memory: str = "2G"
    gpu: int = Field(0, ge=0, le=16)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> str:
        parse_memory(v)
        return str(v)

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)


class ResourceLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Resources = Field(default_factory=Resources)
    maximum: Resources = Field(default_factory=lambda: Resources(cpu=2, memory="8G"))

    @model_validator(mode="after")
    def _default_within_maximum(self) -> ResourceLimits:
        d, m = self.default, self.maximum
        if d.cpu > m.cpu or d.memory_bytes > m.memory_bytes or d.gpu > m.gpu:
            raise ValueError("default resources exceed the maximum")
        return self


def _command(v: Any) -> list[str]:
    if isinstance(v, str):
        return shlex.split(v)
    return v


class DesktopApp(BaseModel):
    """One app of a desktop datalab with several: an entry of its launcher menu."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    command: list[str] = Field(min_length=1)
    autostart: bool = Field(True, description="Start with the session (else only from the menu).")
    _split = field_validator("command", mode="before")(classmethod(lambda cls, v: _command(v)))


class DesktopSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    command: list[str] = Field(default_factory=list, description="The app of a single-app desktop.")
    apps: list[DesktopApp] = Field(
        default_factory=list,
        description="Several apps in one desktop with a launcher menu; those not installed are left out.",
    )
    samp_hub: bool = Field(False, description="Start a SAMP hub before the apps.")
    _split = field_validator("command", mode="before")(classmethod(lambda cls, v: _command(v)))

    @model_validator(mode="after")
    def _command_or_apps(self) -> DesktopSpec:
        if bool(self.command) == bool(self.apps):
            raise ValueError("a desktop needs either command (one app) or apps (several), not both")
        return self


class RuntimeSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: Literal["web", "desktop"]
    command: list[str] = Field(default_factory=list, description="Web labs: with {socket}, {base_url}.")
    desktop: DesktopSpec | None = None
    environment: str = "platform"
    requirements: list[str] = Field(default_factory=list)
    requires: list[str] = Field(default_factory=list, description="Executables needed on the host.")
    packages: dict[str, str] = Field(
        default_factory=dict, description="The Debian package providing each executable in `requires`."
    )
    python_packages: list[str] = Field(default_factory=list)
    resources: ResourceLimits = Field(default_factory=ResourceLimits)
    allowed_groups: list[str] = Field(default_factory=list)
    scope: Literal["user", "team"] = Field(
        "user",
        description="team: launched for a team (its workspace only is mounted, {team} in the command), "
        "one lab per team at a time, used by every member of the team (e.g. an MLflow tracking server).",
    )
    secret_env: str = Field(
        "DATALAB_SECRET", description="Environment variable that carries the lab's secret."
    )
    secret_header: str = Field("X-Datalab-Secret: {secret}", description="Header the proxy injects upstream.")
    ready_path: str = Field("{base_url}", description="Path that answers HTTP once the lab serves.")
    start: str = Field(
        "",
        description="What a lab shows first, a notebook or folder inside the lab (a JupyterLab below its "
        "root), e.g. /media/notebooks/welcome.ipynb. An app store datalab that names none starts in "
        "its first notebook.",
    )

    _split = field_validator("command", mode="before")(classmethod(lambda cls, v: _command(v)))

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        path = PurePosixPath(v)
        if v and (not path.is_absolute() or ".." in path.parts):
            raise ValueError("start is a path inside the lab, such as /media/notebooks/welcome.ipynb")
        return v

    def jupyter_root(self) -> str | None:
        """The folder a Jupyter web lab serves files from (None: not a Jupyter server). Without a root
        option Jupyter serves its working directory, which labs start in: the personal workspace."""
        if (
            self.kind != "web"
            or not self.command
            or not PurePosixPath(self.command[0]).name.startswith("jupyter")
        ):
            return None
        for arg in self.command[1:]:
            option, sep, value = arg.partition("=")
            if sep and option in JUPYTER_ROOT_OPTIONS and value.startswith("/"):
                return value.rstrip("/") or "/"
        return LAB_WORKDIR

    @model_validator(mode="after")
    def _has_command(self) -> RuntimeSpec:
        if self.kind == "web" and not self.command:
            raise ValueError("a web datalab needs runtime.command")
        if self.kind == "desktop" and self.desktop is None:
            raise ValueError("a desktop datalab needs runtime.desktop.command or runtime.desktop.apps")
        return self


class Creator(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = ""


class ContactPoint(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    email: str = ""
    organisation_name: str = Field("", alias="organisation-name")


class Distribution(BaseModel):
    model_config = ConfigDict(extra="allow")
    license: str = ""


_MEDIA_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/(\*|[a-z0-9][a-z0-9.+-]*)$")
OPENERS = ("notebook", "file", "command")


class AssociatedMedia(BaseModel):
    """Files of some media types a datalab opens from the explorer, and how (ESA's "Associated File
    Types"): `notebook` — a JupyterLab makes a new notebook whose first cell loads the file and shows a
    preview; `file` — a JupyterLab opens the file itself (text, CSV, images); `command` — a desktop app
    is started with the file (`{path}` in the command is the file's path inside the lab)."""

    model_config = ConfigDict(extra="forbid")

    encodingFormat: list[str] = Field(min_length=1, description="Media types, e.g. image/fits or text/*.")
    open: Literal["notebook", "file", "command"] = "file"
    command: list[str] = Field(default_factory=list)
    preference: int = Field(50, ge=0, le=100, description="Higher is offered first.")

    @field_validator("encodingFormat", mode="before")
    @classmethod
    def _types(cls, v: Any) -> list[str]:
        types = [t.lower() for t in _listify(v)]
        for t in types:
            if not _MEDIA_TYPE_RE.match(t):
                raise ValueError(f"'{t}' is not a media type such as image/fits or text/*")
        return types

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, v: Any) -> list[str]:
        return _command(v)

    @model_validator(mode="after")
    def _command_has_path(self) -> AssociatedMedia:
        if self.command and self.open != "command":
            self.open = "command"
        if self.open == "command" and not any("{path}" in part for part in self.command):
            raise ValueError("open: command needs a command with {path} where the file goes")
        return self

    def matches(self, media_type: str) -> bool:
        media_type = media_type.lower()
        major = media_type.split("/", 1)[0]
        return any(t == media_type or t == f"{major}/*" for t in self.encodingFormat)


def _listify(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    if isinstance(v, list | tuple):
        return [str(s) for s in v]
    raise ValueError("expected a list or a comma-separated string")


class DatalabMeta(BaseModel):
    """One version of one datalab definition."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(pattern=NAME_RE)
    title: str = Field(min_length=1, max_length=200)
    alternateName: str = ""
    abstract: str = Field("", max_length=2000)
    description: str = ""
    version: str = Field(min_length=1, max_length=64)
    creator: Creator = Field(default_factory=Creator)
    contactPoint: ContactPoint = Field(default_factory=ContactPoint)
    mission: list[str] = Field(default_factory=list)
    instrument: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    thumbnailUrl: str = ""
    distribution: Distribution = Field(default_factory=Distribution)
    citation: str = ""
    requiredDataset: list[str] = Field(default_factory=list)
    domain: str = ""
    datePublished: str = ""
    allowed_groups: list[str] = Field(default_factory=list)
    associatedMedia: list[AssociatedMedia] = Field(default_factory=list)
    runtime: RuntimeSpec

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        # YAML reads `version: 1.10` as the float 1.1; insist on quotes rather than guess.
        if isinstance(v, float):
            raise ValueError(f"write the version as a quoted string (YAML read {v!r} as a number)")
        return str(v) if isinstance(v, int) else v

    _lists = field_validator(
        "mission", "instrument", "keywords", "requiredDataset", "allowed_groups", mode="before"
    )(classmethod(lambda cls, v: _listify(v)))

    @model_validator(mode="after")
    def _openers_fit_the_runtime(self) -> DatalabMeta:
        for media in self.associatedMedia:
            if media.open == "command" and self.runtime.kind != "desktop":
                raise ValueError("associatedMedia: only a desktop datalab starts a command with the file")
            if media.open != "command" and self.runtime.kind != "web":
                raise ValueError(f"associatedMedia: open: {media.open} needs a web datalab (a JupyterLab)")
        return self

    def opener(self, media_type: str) -> AssociatedMedia | None:
        """How this datalab opens files of `media_type` (its most preferred way), None if it does not."""
        fitting = [m for m in self.associatedMedia if m.matches(media_type)]
        return max(fitting, key=lambda m: m.preference, default=None)

    @property
    def groups(self) -> list[str]:
        """Groups allowed to see and launch it (top level or `runtime.allowed_groups`); empty = all."""
        return sorted(set(self.allowed_groups) | set(self.runtime.allowed_groups))


def undot(data: dict[str, Any]) -> dict[str, Any]:
    """Turn `{"contactPoint.email": x}` into `{"contactPoint": {"email": x}}`, merging with nested maps.

    Only schema.org-style object keys (`_DOTTABLE`) are split, so other keys may contain dots."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        parts = key.split(".") if isinstance(key, str) and key.split(".")[0] in _DOTTABLE else [key]
        _merge(out, parts, value, key)
    return out


def _merge(out: dict[str, Any], parts: list[str], value: Any, key: str) -> None:
    for part in parts[:-1]:
        out = out.setdefault(part, {})
        if not isinstance(out, dict):
            raise ValueError(f"'{key}' conflicts with '{part}', which is not a map")
    last = parts[-1]
    if isinstance(value, dict) and isinstance(out.get(last), dict):
        out[last] = {**out[last], **value}
    else:
        out[last] = value


_DOTTABLE = {"creator", "contactPoint", "distribution", "runtime", "publisher", "provider"}
