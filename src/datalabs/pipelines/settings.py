"""Settings of the pipeline service (`DATALABS_PIPELINES__*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PipelineSettings(BaseModel):
    worker: bool = Field(
        True,
        description="Run a pipeline worker and the scheduler inside `datalabs serve` (the embedded default).",
    )
    slots: int = Field(2, ge=1, le=64, description="Runs one worker process executes at once.")
    poll_interval: float = Field(
        1.0, gt=0, description="Seconds between queue checks when idle (runs submitted here wake it at once)."
    )
    lease: float = Field(
        30.0,
        gt=0,
        description="Seconds a claimed run stays leased without a heartbeat before it is re-queued.",
    )
    default_timeout: int = Field(3600, ge=1, description="Seconds a run may take unless it asks for less.")
    max_timeout: int = Field(7 * 86400, ge=1, description="Longest timeout a run may ask for.")
    max_attempts: int = Field(
        2, ge=1, le=10, description="Attempts per run; only infrastructure failures (a lost worker) retry."
    )
    sandbox: bool = Field(
        True, description="Run CWL tools inside bubblewrap (inputs read-only, output dir writable)."
    )
    containers: Literal["refuse", "sandbox"] = Field(
        "refuse",
        description="Tools that *require* a container image (DockerRequirement under 'requirements'): "
        "'refuse' them (cwl-runner exits 33, as `cwltool --no-container`), or run them in the platform's "
        "sandbox with the platform's software, the requirement read as a hint (the image is not used).",
    )
    tool_network: Literal["none", "outbound"] = Field(
        "outbound",
        description="What a CWL tool that declares NetworkAccess (networkAccess: true) gets: 'outbound' "
        "(internet through a user-mode stack, the host and private ranges unreachable) or 'none'. Tools "
        "that do not declare it always run with their own loopback only.",
    )
    smtp_host: str = Field("", description="SMTP server for e-mail notifications; empty: no e-mail.")
    smtp_port: int = Field(25, description="SMTP port.")
    smtp_starttls: bool = Field(False, description="Use STARTTLS with the SMTP server.")
    smtp_user: str = Field("", description="SMTP login (optional).")
    smtp_password: str = Field("", description="SMTP password (optional).")
    mail_from: str = Field("datalabs@localhost", description="Sender address of notifications.")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds the mail server has for each step.")
    webhook_secret: str = Field(
        "", description="Key that signs webhooks (HMAC-SHA256); empty: the platform's secret key."
    )
    webhook_allow_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR) webhooks may reach besides public addresses, e.g. an internal receiver; "
        "loopback, private and link-local addresses are refused otherwise.",
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds a webhook receiver has to answer.")
    scheduler_interval: float = Field(15.0, gt=0, description="Seconds between checks for due schedules.")
    system: bool = Field(True, description="Register the system pipelines shipped with Datalabs at start.")
