"""`[[clusters]]` in datalabs.toml: where labs and runs may be placed, who may use each, and the limits.

Backend options (partition, account, QoS, time limit, GPU type) are written into Slurm job scripts and
command lines, so each is held to a strict form here, once, whatever later renders them: names of
letters, digits, `_`, `.` and `-` (no whitespace, newline, option dash or shell metacharacter).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from datalabs.catalogue.schema import NAME_RE, ResourceLimits

# A Slurm name (partition, account, QoS, GRES type): starts with a letter or digit, so never an option.
SLURM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# sbatch --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or no limit.
TIME_LIMIT = re.compile(r"\d{1,7}(:\d{1,2}){0,2}|\d{1,4}-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|INFINITE")
# The platform's address for jobs (endpoint "port"): scheme, host or [IPv6], port, path; nothing else.
CALLBACK_URL = re.compile(
    r"https?://(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(:\d{1,5})?(/[A-Za-z0-9_.~/-]{0,500})?"
)
GROUP_NAME = re.compile(r"[a-z][a-z0-9_.-]{1,31}")  # as accounts.service.NAME_RE


def _refuse(field: str, value: str, rule: str) -> ValueError:
    shown = value if len(value) <= 40 else value[:40] + "..."
    return ValueError(f"{field} {shown!r} refused: {rule}")


class ClusterOptions(BaseModel):
    """Backend options; empty means the backend's own default (Slurm: the default partition, ...)."""

    model_config = ConfigDict(extra="forbid")

    partition: str = Field("", description="Slurm partition(s) jobs go to, e.g. 'debug' or 'gpu,gpu2'.")
    account: str = Field("", description="Slurm account jobs are charged to (sbatch --account).")
    qos: str = Field("", description="Slurm quality of service (sbatch --qos).")
    time_limit: str = Field(
        "", description="Walltime of each job in sbatch --time form, e.g. '8:00:00' or '1-00:00:00'."
    )
    gpu_type: str = Field("", description="GRES type of the GPUs asked for, e.g. 'a100' (--gres=gpu:a100:N).")
    gpu_partition: str = Field(
        "",
        description="Partition(s) of jobs asking for GPUs (CWL CUDARequirement); empty: partition.",
    )
    shared_dirs: list[str] = Field(
        default_factory=list,
        max_length=50,
        exclude=True,  # server paths, as slurm_conf
        description="Folders the platform host and every node share (absolute paths): a pipeline run's work, "
        "job store and output folders must lie below one of them before its jobs are submitted.",
    )
    endpoint: Literal["socket", "port"] = Field(
        "socket",
        exclude=True,  # how the proxy reaches labs: the operator's concern, not shown to users
        description="How the proxy reaches a lab on a node: 'socket', its unix socket in a folder the node "
        "shares with the platform; 'port', a TCP port the job binds on its node and reports to the platform.",
    )
    callback_url: str = Field(
        "",
        exclude=True,  # an internal address of the platform: never shown to users
        description="The platform's address as the nodes reach it (endpoint 'port'), e.g. "
        "'http://10.0.0.1:8000'; default: the platform's own (labs.api_url, else the server's address).",
    )
    port_range: str = Field(
        "",
        exclude=True,  # the operator's firewall detail
        description="Ports the jobs may serve labs on (endpoint 'port'), e.g. '40000-40999' where only those "
        "are open from the platform to the nodes; default: any port the node's kernel picks.",
    )
    slurm_conf: str = Field(
        "",
        exclude=True,  # a server path: never shown to users (GET /api/v1/clusters dumps the options)
        description="The cluster's slurm.conf (absolute path; set as SLURM_CONF for sbatch, squeue and "
        "scancel). Empty: Slurm's own default (the SLURM_CONF environment, or /etc/slurm/slurm.conf).",
    )

    @field_validator("account", "qos", "gpu_type")
    @classmethod
    def _slurm_name(cls, value: str, info) -> str:
        if value and not SLURM_NAME.fullmatch(value):
            raise _refuse(info.field_name, value, _NAME_RULE)
        return value

    @field_validator("partition", "gpu_partition")
    @classmethod
    def _partitions(cls, value: str, info) -> str:
        if value and not all(SLURM_NAME.fullmatch(part) for part in value.split(",")):
            raise _refuse(info.field_name, value, "a comma-separated list of names; each " + _NAME_RULE)
        return value

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, value: str) -> str:
        if value and not TIME_LIMIT.fullmatch(value):
            rule = "use minutes, H:M:S or D-H:M:S (sbatch --time), or UNLIMITED"
            raise _refuse("time_limit", value, rule)
        return value

    @field_validator("slurm_conf")
    @classmethod
    def _slurm_conf(cls, value: str) -> str:
        # Only ever an environment value for Slurm's clients, but a path: absolute, printable, no '..'.
        if value and not _plain_absolute(value):
            raise _refuse("slurm_conf", value, "an absolute path of printable characters, without '..'")
        return value

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str) -> str:
        # Where jobs send a secret token: a plain http(s) base URL, no credentials, query or fragment.
        if value and not CALLBACK_URL.fullmatch(value):
            raise _refuse(
                "callback_url", value, "an http:// or https:// address (host, optional port and path)"
            )
        return value.rstrip("/")

    @field_validator("port_range")
    @classmethod
    def _port_range(cls, value: str) -> str:
        if value and port_bounds(value) is None:
            raise _refuse("port_range", value, "two ports 'LOW-HIGH', 1024 <= LOW <= HIGH <= 65535")
        return value

    @field_validator("shared_dirs")
    @classmethod
    def _shared_dirs(cls, value: list[str]) -> list[str]:
        # Compared with a run's folders as plain prefixes: no '..', no trailing '/', no '%' (sbatch patterns).
        for path in value:
            if not _plain_absolute(path) or "%" in path or not path.strip("/"):
                rule = "an absolute path of printable characters, without '..' or '%', not '/' itself"
                raise _refuse("shared_dirs", path, rule)
        return [path.rstrip("/") for path in value]


def port_bounds(text: str) -> tuple[int, int] | None:
    """(low, high) of a port range 'LOW-HIGH' of unprivileged ports; None if `text` is not one."""
    match = re.fullmatch(r"(\d{4,5})-(\d{4,5})", text)
    if match is None:
        return None
    low, high = int(match[1]), int(match[2])
    return (low, high) if 1024 <= low <= high <= 65535 else None


def _plain_absolute(path: str) -> bool:
    return path.startswith("/") and len(path) <= 4096 and path.isprintable() and ".." not in path.split("/")


_NAME_RULE = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Short name used by the API and CLI (--cluster), e.g. 'hpc'.")
    title: str = Field("", max_length=200, description="Shown in the launch dialog; default: the name.")
    description: str = Field("", max_length=4000, description="What the cluster offers, for users.")
    backend: Literal["local", "slurm"] = Field(
        "local", description="'local': this server's sandboxes; 'slurm': jobs on a Slurm cluster."
    )
    options: ClusterOptions = Field(default_factory=ClusterOptions, description="Backend options.")
    allowed_groups: list[str] = Field(
        default_factory=list, max_length=100, description="Groups whose members may use it; empty: everyone."
    )
    resources: ResourceLimits | None = Field(
        None,
        description="Default and maximum resources (cpu, memory, gpu) of one lab or run on this cluster; "
        "unset: each datalab's own.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(NAME_RE, value):
            raise _refuse("name", value, "1 to 64 lowercase letters, digits, '_', '.' or '-'")
        return value

    @field_validator("allowed_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not GROUP_NAME.fullmatch(group):
                raise _refuse("allowed_groups", group, "not a group name")
        return sorted(set(value))

    @model_validator(mode="after")
    def _options_fit_the_backend(self) -> ClusterSettings:
        if self.backend == "local":
            unset = type(self.options)()
            given = [
                n for n in type(self.options).model_fields if getattr(self.options, n) != getattr(unset, n)
            ]
            if given:
                raise ValueError(f"options {', '.join(given)} apply to Slurm clusters, not backend 'local'")
        self.title = self.title or self.name
        return self


def default_clusters() -> list[ClusterSettings]:
    return [
        ClusterSettings(name="local", title="This server", description="Labs run on the platform's host.")
    ]


def check_clusters(clusters: list[ClusterSettings]) -> list[ClusterSettings]:
    """Unique names; none configured (or an empty list) means the single default `local` cluster."""
    if not clusters:
        return default_clusters()
    names = [cluster.name for cluster in clusters]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"clusters: name {', '.join(duplicates)} is configured more than once")
    return clusters


def time_limit_seconds(text: str) -> int | None:
    """An sbatch --time value (as TIME_LIMIT admits it) in seconds; None for none or unlimited."""
    if not text or text in ("UNLIMITED", "INFINITE"):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(part) for part in rest.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = (parts + [0, 0])[:3]
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(parts) == 1:  # M
        return parts[0] * 60
    if len(parts) == 2:  # M:S
        return parts[0] * 60 + parts[1]
    hours, minutes, seconds = parts  # H:M:S
    return (hours * 60 + minutes) * 60 + seconds
