"""What a lab is started with: its `LabSpec` (command, mounts, sandbox policy, environment), made from its
record, its datalab version and its owner's workspaces and volumes (a part of `LabManager`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from sqlalchemy import select

from datalabs.accounts import service as accounts
from datalabs.catalogue.schema import NOTEBOOKS_MOUNT, DatalabMeta, RuntimeSpec
from datalabs.config import Settings
from datalabs.db.models import Datalab, DatalabVersion, Lab
from datalabs.errors import DatalabsError
from datalabs.labs import api_socket, quota_check, service, team_labs
from datalabs.runtimes.base import DesktopApp, LabSpec, Mount, StartError
from datalabs.sandbox.bwrap import ApiAccess
from datalabs.sandbox.policy import Policy
from datalabs.volumes import service as volume_service
from datalabs.workspaces import layout
from datalabs.workspaces import service as workspace_service

SOCKET = "/run/datalab/lab.sock"  # where every lab serves, inside its sandbox


class SpecBuilder:
    """LabManager's part that makes a lab's LabSpec."""

    def _spec(
        self, lab_id: str, token: str, open_command: list[str] | None = None
    ) -> tuple[LabSpec, str, str]:
        network = self.settings.labs.network
        api = (
            ApiAccess(api_socket.socket_dir(self.settings), self.settings.labs.api_port)
            if network != "host"
            else None
        )
        api_url = self.api_url() if api is None else f"http://127.0.0.1:{api.port}"  # as the lab reaches it
        with self.sessions() as db:
            lab = db.get(Lab, lab_id)
            version = db.scalar(
                select(DatalabVersion)
                .join(Datalab)
                .where(Datalab.name == lab.datalab, DatalabVersion.version == lab.version)
            )
            meta = DatalabMeta.model_validate(version.meta)
            owner, cluster = lab.owner.name, lab.cluster
            identity = accounts.sandbox_identity(db, self.settings, lab.owner)
            team, model = lab.team, lab.model or ""
            mounts = [
                Mount(
                    workspace_service.personal(self.settings, lab.owner).tree.root,
                    layout.LAB_MOUNT,
                    readonly=False,
                )
            ]
            # Its own home, not the workspace: dot-folders and app settings stay out of the owner's files.
            home = layout.lab_home(lab.datalab)
            workdir = layout.LAB_MOUNT
            if team is not None:  # no personal workspace in a team's lab: it works in the team's
                home = workdir = f"/media/home/team_workspaces/{team}"
            if identity is not None:
                identity = replace(identity, home=home)  # Java and others read it from the passwd entry
            quota_check.prepare(self.settings, db, lab.owner)  # project quotas: limits set before any write
            if team is not None:  # serves the whole team: its workspace alone, none of the owner's files
                mounts = _team_mounts(db, self.settings, lab.owner, team)
            else:
                mounts += _owner_mounts(db, self.settings, lab)
            tracking = team_labs.tracking_env(db, self.settings, lab, api_url)
            if version.source_path:
                mounts.append(Mount(Path(version.source_path).parent, NOTEBOOKS_MOUNT, readonly=True))
            built = _built_environment(self.settings, version.meta)
            mounts += built.mounts
        rt = meta.runtime
        secret = service.new_secret()
        policy = Policy.of(self.settings, identity, network, pids_max=self.settings.sandbox.pids_max, api=api)
        base_url = f"/datalabs/{lab_id}/"
        fill = {"socket": SOCKET, "base_url": base_url, "secret": secret, "team": team or "", "model": model}
        header_name, _, header_value = rt.secret_header.format(**fill).partition(":")
        lab_dir = self.settings.home / "labs" / lab_id
        command = [
            part.format(**fill) for part in (rt.desktop.command if rt.kind == "desktop" else rt.command)
        ]
        if open_command and rt.kind == "desktop" and rt.desktop.command:
            command = list(open_command)
        if start := _start_page(rt):
            command.append(f"--LabApp.default_url={start}")
        env = {
            "DATALAB_ID": lab_id,
            "DATALABS_API_URL": api_url,
            "DATALABS_TOKEN": token,
            "DATALABS_LAB_OWNER": owner,  # who the lab serves when the proxy names nobody (jupyter_identity)
            rt.secret_env: secret,
            "HOME": home,
            "JUPYTER_RUNTIME_DIR": "/run/datalab/jupyter",
            # Each lab its own JupyterLab layout: a second lab does not reopen the first one's notebooks.
            "JUPYTERLAB_WORKSPACES_DIR": "/run/datalab/jupyterlab-workspaces",
            "DATALAB_TITLE": meta.title,  # a desktop lab's name in VNC
            **built.env,  # a version built on the platform: its environment (default kernel, PATH)
            **tracking,  # its tracking team's MLflow server, if one runs (labs/team_labs.py)
        }
        spec = LabSpec(
            lab_id=lab_id,
            owner=owner,
            kind=rt.kind,
            command=command,
            runtime_dir=self.runtime_dir(lab_id),
            log_path=lab_dir / "lab.log",
            env=env,
            mounts=mounts,
            cpu=lab.cpu,
            memory_bytes=lab.memory,
            gpu=lab.gpu,
            secret=secret,
            secret_headers={header_name.strip(): header_value.strip()},
            ready_path=rt.ready_path.format(**fill),
            start_timeout=self.settings.labs.start_timeout,
            policy=policy,
            workdir=workdir,
            platform_url=self.api_url(),  # where a Slurm node reports its lab's port (endpoint "port")
            **_desktop_apps(rt),
        )
        return spec, owner, cluster


def _owner_mounts(db, settings: Settings, lab: Lab) -> list[Mount]:
    """An ordinary lab's team workspaces and chosen volumes."""
    mounts = []
    # Only teams that have a workspace; read-only members get it read-only; others never see it.
    for team, readonly in workspace_service.mountable_teams(db, lab.owner):
        mounts.append(
            Mount(
                workspace_service.team_root(db, settings, team),
                f"/media/home/team_workspaces/{team}",
                readonly=readonly,
            )
        )
    # Volumes chosen at launch, checked again: access may have been withdrawn since.
    try:
        mounts += volume_service.mount_plan(db, settings, lab.owner, lab.volumes)
    except DatalabsError as exc:
        raise StartError(f"cannot mount the chosen data volumes: {exc.message}") from None
    return mounts


def _team_mounts(db, settings: Settings, owner, team: str) -> list[Mount]:
    """A team-scoped lab's one mount: its team's workspace, writable, if its owner still writes there."""
    for name, readonly in workspace_service.mountable_teams(db, owner):
        if name == team and not readonly:
            root = workspace_service.team_root(db, settings, team)
            return [Mount(root, f"/media/home/team_workspaces/{team}", readonly=False)]
    raise StartError(
        f"{owner.name} no longer writes in team '{team}''s workspace: launch it as a member who does"
    )


def _built_environment(settings: Settings, meta: dict):
    """Mounts and variables of the environment an app version or a catalogue datalab was built into
    (none for datalabs on the platform's environment)."""
    from datalabs.builder.base import LabEnvironment, get_builder

    build = meta.get("_build") or {}
    if build.get("key") and not build.get("env"):  # a catalogue datalab whose environment is not built
        from datalabs.catalogue.builds import unbuilt_reason

        raise StartError(f"this version cannot start: {unbuilt_reason(build)}")
    if not build.get("env"):
        return LabEnvironment()
    env = Path(build["env"])
    if not (env / ".complete").is_file():
        raise StartError("this version's environment is missing; build the datalab again")
    return get_builder(build.get("builder", "uv"), env.parent).lab_environment(env)


def _start_page(rt: RuntimeSpec) -> str | None:
    """Where a JupyterLab goes first (from its base URL): the datalab's `start`, a notebook or folder
    below the lab's root, opened by JupyterLab's /lab/tree/ route. None for other labs."""
    root = rt.jupyter_root()
    if not rt.start or root is None or not PurePosixPath(rt.start).is_relative_to(root):
        return None
    return "/lab/tree/" + quote(str(PurePosixPath(rt.start).relative_to(root)))


def _desktop_apps(rt: RuntimeSpec) -> dict:
    """LabSpec fields of a desktop datalab with several apps (nothing for other datalabs)."""
    if rt.kind != "desktop" or not rt.desktop or not rt.desktop.apps:
        return {}
    apps = tuple(DesktopApp(a.name, tuple(a.command), a.autostart) for a in rt.desktop.apps)
    return {"apps": apps, "samp_hub": rt.desktop.samp_hub}
