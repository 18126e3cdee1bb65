"""Settings: `DATALABS_*` environment variables, then an optional `datalabs.toml`, then defaults.

Nested areas use `__` in environment names, e.g. `DATALABS_AUTH__SESSION_TTL=3600`. The TOML file is
looked up at `$DATALABS_CONFIG`, else `$DATALABS_HOME/datalabs.toml`, else `./datalabs.toml`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ByteSize, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from datalabs.accounts.oidc_settings import OidcSettings
from datalabs.audit.settings import AuditSettings
from datalabs.clusters.settings import ClusterSettings, check_clusters, default_clusters
from datalabs.pipelines.settings import PipelineSettings
from datalabs.pipelines.trigger_settings import TriggerSettings
from datalabs.usage.settings import ClusterQuotas, check_quotas


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
    refresh_interval: float = Field(
        1.0,
        ge=0,
        description="Seconds a process serves its catalogue without asking the DB whether another process "
        "changed it (its own changes show at once; 0 = ask on every request).",
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
    origin_url: str = Field(
        "http://{lab}.lab.localhost:{port}",
        description="Where each lab is served: an origin of its own, so no script on a lab page can use "
        "the platform's session (as JupyterHub's subdomain_host). {lab} is the lab id, {port} the "
        "server's port (server.port). Production: e.g. 'https://{lab}.labs.example.org' with a wildcard "
        "DNS record and certificate, proxied to the platform with the Host header kept. The default "
        "needs no DNS: browsers resolve every *.localhost name to loopback.",
    )
    unsafe_platform_origin: bool = Field(
        False,
        description="UNSAFE: serve labs under /datalabs/{id}/ on the platform's own origin with the "
        "platform session, as before labs had origins of their own. Any script on a lab page (a notebook "
        "output, a published app) can then act as its user on the whole platform. Only for sites that "
        "cannot give labs their own host names; warned about at start and on the admin page.",
    )
    cookie_ttl: int = Field(
        3600,
        ge=60,
        description="Seconds a lab cookie (the browser's pass to one lab on its origin) lasts; renewed "
        "while the lab is used, and never valid beyond the login session it came from.",
    )
    api_url: str = Field("", description="Platform API URL given to labs; default: the server's own address.")
    network: Literal["none", "outbound", "host"] = Field(
        "none",
        description="Network of each lab: 'none' (its own loopback only), 'outbound' (internet through a "
        "user-mode stack, the host and private ranges unreachable), 'host' (the host's network: NOT "
        "isolated, for hosts that cannot make network namespaces). Labs reach the platform API either way.",
    )
    api_port: int = Field(
        8750,
        ge=1024,
        le=65535,
        description="Port of the platform API on a lab's own loopback (DATALABS_API_URL).",
    )
    runtime_dir: Path | None = Field(
        None,
        description="Where labs' unix sockets live (kept short: socket paths are limited to 107 bytes). "
        "Default /run/datalabs as root, else /tmp/datalabs-<uid>.",
    )
    gpu_device_root: Path = Field(
        Path("/dev"),
        description="Where this host's GPU device nodes (nvidia0, nvidia1, ..., nvidiactl, nvidia-uvm) are "
        "found for labs that ask for GPUs. Only tests and unusual hosts change it.",
    )


class SandboxSettings(BaseModel):
    """Containment shared by labs, CWL tool runs and builds (DESIGN §5, src/datalabs/sandbox/)."""

    uid_base: int = Field(
        1_000_000_000,
        ge=1000,
        description="Sandboxes of user N run as uid uid_base + N (the platform must run as root), far above "
        "ordinary accounts and subordinate-id ranges.",
    )
    team_gid_base: int = Field(
        1_500_000_000, ge=1000, description="Team N's workspace belongs to gid team_gid_base + N."
    )
    pids_max: int = Field(
        1024, ge=16, description="Processes and threads one lab may have at once (cgroup pids limit)."
    )
    tool_pids_max: int = Field(
        256, ge=16, description="Processes and threads of one CWL tool run or build step."
    )
    user_nproc: int = Field(
        4096, ge=64, description="Processes one user's sandboxes may have in all (RLIMIT_NPROC of their uid)."
    )
    seccomp: bool = Field(
        True, description="Deny dangerous system calls (user namespaces, mounts, kernel keyring, BPF, ...)."
    )
    blocked_networks: list[str] = Field(
        default_factory=lambda: [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/4",
        ],
        description="Destinations sandboxes with outbound access never reach (besides the host's own "
        "addresses): loopback, private, shared, link-local, multicast and reserved ranges.",
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="Exceptions to blocked_networks, e.g. a package mirror on the site's private network.",
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
    harvest_every_minutes: int = Field(
        60,
        ge=0,
        description="Harvest every data volume this often (only new or changed files are read), so files "
        "added to a volume appear in the explorer; 0: only when an administrator asks (Index now).",
    )


class BuilderSettings(BaseModel):
    allow_local_git: bool = Field(
        False,
        description="Let users build datalabs from git repositories given as local paths or file:// URLs "
        "(off: a user could otherwise read any repository on the platform's host).",
    )
    network: Literal["none", "outbound"] = Field(
        "outbound",
        description="Network of build steps: 'outbound' reaches the package index (through a user-mode "
        "stack, the host and private ranges unreachable); 'none' for sites that install from local wheels.",
    )
    find_links: list[Path] | None = Field(
        None,
        description="Local wheel directories builds install from besides the index (uv's --find-links, "
        "bound read-only into the build's sandbox), e.g. ['/opt/wheels'] holding a CPU build of PyTorch. "
        "Unset: pip's configured find-links (pip.conf, PIP_FIND_LINKS), if any; [] for none.",
    )


ROLES = ("api", "proxy", "manager", "worker")


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `datalabs serve` binds.")
    port: int = Field(8000, description="Port `datalabs serve` binds.")
    public_url: str = Field("", description="URL users reach the platform at; default http://host:port.")
    roles: list[Literal["api", "proxy", "manager", "worker"]] = Field(
        list(ROLES),
        description="What this process does (`serve --role`): 'api' the API and pages, 'proxy' the labs' "
        "traffic, 'manager' starts, follows and culls labs (one replica at a time: it holds the manager "
        "lease), 'worker' runs pipelines and fires schedules. All of them by default.",
    )
    forwarded_allow_ips: str = Field(
        "",
        description="Addresses of the reverse proxies (nginx) allowed to say who the client is "
        "(X-Forwarded-For, -Proto), comma-separated, e.g. '127.0.0.1'. Empty: nobody; the client is the "
        "connection's peer. Behind a proxy, set it: login throttling counts per client address.",
    )
    lease_ttl: float = Field(
        5.0, gt=1, le=300, description="Seconds a dead manager's lease lasts before another replica takes it."
    )
    sync_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between two reads of the shared state (routes of labs, launches waiting for the "
        "manager) by each replica.",
    )


class Settings(BaseSettings):
    """All configuration of one Datalabs installation."""

    model_config = SettingsConfigDict(env_prefix="DATALABS_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path("./var"), description="Where the platform keeps its state (DESIGN §8).")
    site_name: str = Field("Datalabs", description="Name shown in the page header.")
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    catalogue: CatalogueSettings = Field(default_factory=CatalogueSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    labs: LabSettings = Field(default_factory=LabSettings)
    workspaces: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    volumes: VolumeSettings = Field(default_factory=VolumeSettings)
    assets: AssetSettings = Field(default_factory=AssetSettings)
    pipelines: PipelineSettings = Field(default_factory=PipelineSettings)
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    builder: BuilderSettings = Field(default_factory=BuilderSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    clusters: list[ClusterSettings] = Field(
        default_factory=default_clusters,
        description="Where labs and runs may be placed ([[clusters]] tables, see "
        "datalabs/clusters/settings.py). None configured: one cluster 'local', this server.",
    )
    quotas: dict[str, ClusterQuotas] = Field(
        default_factory=dict,
        description="Per cluster ([quotas.<cluster>]): limits of each user ('user') and of each group's "
        "members together ('groups.<name>') on labs, CPUs, memory and GPUs in use at once and CPU- and "
        "GPU-hours per calendar month (see datalabs/usage/settings.py). None: no quota beyond "
        "labs.max_running_per_user.",
    )

    @field_validator("home", mode="before")
    @classmethod
    def _home_is_named(cls, value):
        # `DATALABS_HOME= datalabs serve` would otherwise put the platform's state in the current folder.
        if isinstance(value, str) and not value.strip():
            raise ValueError("DATALABS_HOME is set but empty: name a folder (default ./var)")
        return value

    @field_validator("clusters")
    @classmethod
    def _clusters(cls, value: list[ClusterSettings]) -> list[ClusterSettings]:
        return check_clusters(value)

    @model_validator(mode="after")
    def _quotas_name_clusters(self) -> Settings:
        check_quotas(self.quotas, [cluster.name for cluster in self.clusters])
        return self

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
