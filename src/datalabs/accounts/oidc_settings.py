"""Settings of single sign-on (`[oidc]` in datalabs.toml, `DATALABS_OIDC__*`): OpenID Connect providers."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class OidcProvider(BaseModel):
    """One `[[oidc.providers]]` table: an OpenID Connect provider people sign in with."""

    name: str = Field(description="Short id used in URLs (lowercase letters, digits, '-').")
    title: str = Field("", description="Label of the login button (default: the name).")
    issuer: str = Field(description="Issuer URL; discovery at issuer + /.well-known/openid-configuration.")
    client_id: str
    client_secret: str = ""
    client_secret_file: Path | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    username_claim: str = "preferred_username"
    groups_claim: str = ""
    group_prefix: str = Field(
        "", description="Claim values starting with this map to the team named by the rest."
    )
    mapping: dict[str, str] = Field(default_factory=dict, description="Claim value -> team name.")
    admin_values: list[str] = Field(default_factory=list, description="Claim values that make an admin.")
    api_audience: str = Field("", description="Audience required of access tokens accepted as Bearer.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"provider name {value!r}: lowercase letters, digits and '-', at most 32")
        return value

    @model_validator(mode="after")
    def _check(self) -> OidcProvider:
        where = f"oidc provider {self.name!r}"
        if not re.match(r"^https?://[^\s/?#]+[^\s?#]*$", self.issuer):
            raise ValueError(f"{where}: issuer must be an http(s) URL without query or fragment")
        if not self.client_id:
            raise ValueError(f"{where}: client_id is required")
        if self.client_secret and self.client_secret_file:
            raise ValueError(f"{where}: give client_secret or client_secret_file, not both")
        if "openid" not in self.scopes:
            raise ValueError(f"{where}: scopes must include 'openid'")
        if (self.group_prefix or self.mapping or self.admin_values) and not self.groups_claim:
            raise ValueError(f"{where}: group_prefix, mapping and admin_values need groups_claim")
        if not self.title:
            self.title = self.name
        return self

    def secret(self) -> str:
        """The client secret, read from client_secret_file when one is given."""
        if self.client_secret_file is not None:
            return self.client_secret_file.read_text().strip()
        return self.client_secret

    def team_for(self, value: str) -> str | None:
        """The team a groups-claim value maps to, or None when this provider does not manage it."""
        if value in self.mapping:
            return self.mapping[value]
        if self.group_prefix and value.startswith(self.group_prefix) and len(value) > len(self.group_prefix):
            return value[len(self.group_prefix) :]
        return None


class OidcSettings(BaseModel):
    local_login: bool = Field(
        True, description="Accept local passwords; false: only the configured providers sign people in."
    )
    providers: list[OidcProvider] = Field(
        default_factory=list,
        description="OpenID Connect providers people sign in with ([[oidc.providers]] tables: name, title, "
        "issuer, client_id, client_secret or client_secret_file, scopes, claims, group mapping, admin "
        "values, api_audience); none: local passwords only.",
    )

    @model_validator(mode="after")
    def _unique(self) -> OidcSettings:
        seen: set[str] = set()
        for provider in self.providers:
            if provider.name in seen:
                raise ValueError(f"oidc provider {provider.name!r} is configured twice")
            seen.add(provider.name)
        if not self.local_login and not self.providers:
            raise ValueError("oidc.local_login = false needs at least one [[oidc.providers]]")
        return self
