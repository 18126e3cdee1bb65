"""Settings of single sign-on (`[oidc]` in datalabs.toml, `DATALABS_OIDC__*`): OpenID Connect providers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OidcSettings(BaseModel):
    local_login: bool = Field(
        True, description="Accept local passwords; false: only the configured providers sign people in."
    )
