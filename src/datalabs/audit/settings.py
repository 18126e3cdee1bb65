"""Settings of the audit log (`[audit]` in datalabs.toml, `DATALABS_AUDIT__*`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuditSettings(BaseModel):
    retention_days: int = Field(
        400,
        ge=1,
        description="Days an audit record is kept; older ones are pruned, the chain stays verifiable.",
    )
