"""Settings: `DATALABS_*` environment variables, then an optional `datalabs.toml`, then defaults.

Nested areas use `__` in environment names, e.g. `DATALABS_AUTH__SESSION_TTL=3600`. The TOML file is
looked up at `$DATALABS_CONFIG`, else `$DATALABS_HOME/datalabs.toml`, else `./datalabs.toml`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ByteSize, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from datalabs.pipelines.settings import PipelineSettings


class DatabaseSettings(BaseModel):
    url: str = Field(
        "",
        description="SQLAlchemy URL. Empty: SQLite at $DATALABS_HOME/datalabs.db (WAL). "
        "PostgreSQL: postgresql+psycopg://user:pw@host/db",
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging only).")


class AuthSettings(BaseModel):
    secret_key: str = Field(
        "",
        description="Key that signs CSRF tokens. Empty: generated once, kept in $DATALABS_HOME/secret_key.",
    )
    session_ttl: int = Field(8 * 3600, description="Seconds a login session lasts.")
    cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set behind TLS)."
    )
    throttle_failures: int = Field(
        5,
        ge=1,
        description="Failed logins a client may make for one user name (4x that over all names) before "
        "it must wait between attempts. Only that client waits: the account is never locked.",
    )
    throttle_delay: float = Field(
        1.0,
        gt=0,
        description="Seconds a throttled client waits after its first extra failure; doubles after each.",
    )
    throttle_window: int = Field(
        900, ge=1, description="Seconds over which failed logins are counted (also the longest wait)."
    )
    cache_ttl: float = Field(
        5.0,
        ge=0,
        description="Seconds an authenticated session or token is remembered per process (0 = off).",
    )
    token_max_ttl: int = Field(
        365 * 86400, description="Longest lifetime an API token may be given, seconds."
    )


class CatalogueSettings(BaseModel):
    builtin: bool = Field(True, description="Load the built-in definitions shipped with Datalabs.")
    dirs: list[Path] = Field(
        default_factory=list,
        description="Extra directories scanned for <name>/datalab-meta.yml (and <name>/versions/<v>/...).",
    )


class LabSettings(BaseModel):
    backend: str = Field("local", description="Runtime backend for labs (entry point in datalabs.runtimes).")
    max_running_per_user: int = Field(2, ge=0, description="Labs a user may have running at once.")
    group_limits: dict[str, int] = Field(
        default_factory=dict, description="Per-group overrides of max_running_per_user (the highest applies)."
    )
    idle_timeout: int = Field(
        3600, ge=0, description="Seconds without proxied traffic before a lab is stopped; 0 = never."
    )
    cull_interval: int = Field(60, ge=1, description="Seconds between checks for idle or ended labs.")
    start_timeout: int = Field(
        120, ge=1, description="Seconds a lab may take to answer before its start fails."
    )
    api_url: str = Field("", description="Platform API URL given to labs; default: the server's own address.")
    runtime_dir: Path | None = Field(
        None,
        description="Where labs' unix sockets live (kept short: socket paths are limited to 107 bytes). "
        "Default /run/datalabs as root, else /tmp/datalabs-<uid>.",
    )


class WorkspaceSettings(BaseModel):
    user_quota: ByteSize = Field(
        ByteSize(100 * 10**9), description="Default quota of a personal workspace, e.g. 100GB or 1.5TiB."
    )
    team_quota: ByteSize = Field(
        ByteSize(1000 * 10**9), description="Default quota of a team workspace (admins may set one per team)."
    )
    quotas: dict[str, ByteSize] = Field(
        default_factory=dict,
        description="Overrides per workspace, keyed 'user:<name>' or 'team:<name>', "
        "e.g. {'user:ada': '1TB'}.",
    )
    usage_ttl: float = Field(
        30.0, ge=0, description="Seconds a measured workspace usage is trusted before it is measured again."
    )
    enforcement: Literal["auto", "project", "check"] = Field(
        "auto",
        description="How quotas hold inside labs: 'project' (ext4/XFS project quotas: the workspaces' "
        "filesystem must be mounted with prjquota), 'check' (the platform measures running labs' "
        "workspaces and makes them read-only inside the lab past the quota), 'auto' (project when the "
        "filesystem has it, else check). See Admin > Catalogue for what is in force.",
    )
    project_ids: tuple[int, int] = Field(
        (2_000_000, 2_999_999),
        description="Range of filesystem project ids given to workspaces (one per personal or team "
        "workspace, kept in <home>/workspaces/.projects.json); keep it clear of other projects on the disk.",
    )
    fsync: bool = Field(
        True,
        description="fsync uploads before renaming them into place (survives a power cut, not only a crash).",
    )


class VolumeSettings(BaseModel):
    roots: list[Path] = Field(
        default_factory=list,
        description="If set, data volumes may only be registered from directories under these paths.",
    )


class AssetSettings(BaseModel):
    tile_url: str = Field(
        "",
        description="Map tiles for the explorer, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; "
        "empty: the bundled offline world map only.",
    )
    tile_attribution: str = Field("", description="Attribution shown for the tiles.")


class BuilderSettings(BaseModel):
    allow_local_git: bool = Field(
        False,
        description="Let users build datalabs from git repositories given as local paths or file:// URLs "
        "(off: a user could otherwise read any repository on the platform's host).",
    )


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `datalabs serve` binds.")
    port: int = Field(8000, description="Port `datalabs serve` binds.")
    public_url: str = Field("", description="URL users reach the platform at; default http://host:port.")


class Settings(BaseSettings):
    """All configuration of one Datalabs installation."""

    model_config = SettingsConfigDict(env_prefix="DATALABS_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path("./var"), description="Where the platform keeps its state (DESIGN §8).")
    site_name: str = Field("Datalabs", description="Name shown in the page header.")
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    catalogue: CatalogueSettings = Field(default_factory=CatalogueSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    labs: LabSettings = Field(default_factory=LabSettings)
    workspaces: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    volumes: VolumeSettings = Field(default_factory=VolumeSettings)
    assets: AssetSettings = Field(default_factory=AssetSettings)
    pipelines: PipelineSettings = Field(default_factory=PipelineSettings)
    builder: BuilderSettings = Field(default_factory=BuilderSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, _toml_path()))

    @cached_property
    def database_url(self) -> str:
        return self.db.url or f"sqlite:///{(self.home / 'datalabs.db').resolve()}"

    @cached_property
    def secret_key(self) -> str:
        """The configured key, or one generated on first use and kept (mode 0600) in the home."""
        if self.auth.secret_key:
            return self.auth.secret_key
        path = self.home / "secret_key"
        if not path.exists():
            import secrets

            self.home.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
            os.replace(tmp, path)
        return path.read_text().strip()

    def ensure_home(self) -> None:
        """Create the DATALABS_HOME layout of DESIGN §8."""
        for sub in ("workspaces/users", "workspaces/teams", "labs", "envs", "assets", "pipelines"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)


def _toml_path() -> Path:
    if explicit := os.environ.get("DATALABS_CONFIG"):
        return Path(explicit)
    home = Path(os.environ.get("DATALABS_HOME", "./var"))
    return home / "datalabs.toml" if (home / "datalabs.toml").exists() else Path("datalabs.toml")
