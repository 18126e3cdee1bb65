"""Settings of pipeline triggers (`DATALABS_TRIGGERS__*`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TriggerSettings(BaseModel):
    max_depth: int = Field(
        5,
        ge=1,
        le=100,
        description="Longest chain of 'run finished' triggers (A -> B -> ...; a self-loop A -> A included): "
        "the run that would go past it is not started, and the reason is recorded on the event.",
    )
    hook_tolerance: float = Field(
        300.0, gt=0, description="Seconds a webhook's signed timestamp may be off the server's clock."
    )
    hook_body: int = Field(64 * 1024, ge=1024, description="Largest webhook body, bytes.")
    scan_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between full scans of watched folders (inotify wakes the watcher sooner where "
        "available; the scan is the fallback, and finds at start what landed while the platform was down).",
    )
    settle: float = Field(
        0.5,
        ge=0,
        description="Seconds a file must stay unchanged before it fires (a file still being written would "
        "otherwise fire once per size it passes through).",
    )
    inotify: bool = Field(
        True,
        description="Wake the scan with inotify (watchfiles) when a watched folder changes; off: scans only.",
    )
    max_files: int = Field(10_000, ge=1, description="Files looked at per watched folder and scan.")
