"""Open in Datalab: put an asset's file where a lab of its owner can open it, and say where and how.

Two placements (DESIGN §5):

- *mounted*: the lab mounts the asset's data volume, so the file already is at
  `/media/data/<volume>/<path>` inside it, read-only, at no cost;
- *copied*: otherwise the file is copied into the owner's personal workspace, under
  `from-explorer/<name>` (a suffix on a name clash), atomically and within the workspace quota.

A JupyterLab serves only files below its root directory (its `--ServerApp.root_dir`; `/media` for the
built-in flavours, which start their file browser in the workspace), so for a JupyterLab whose root is
narrower a mounted file outside that root is copied too: the URL returned must really open the file.
Desktop labs and other web labs get the path to use and the lab's URL.

The asset must be visible to the user (its volume allowed to them), and the lab theirs: another
user's lab is reported as missing, also to administrators, because opening a file writes into the
lab owner's workspace.

Which datalabs open a file, and how, their definitions say (`associatedMedia`, catalogue/schema.py):
a JupyterLab opens the file itself or makes a notebook that loads it (assets/notebooks.py); a desktop
app is started with it. `choices` lists them for a file, best first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.assets import notebooks
from datalabs.assets.base import AssetRecord
from datalabs.assets.service import Assets, visible_collections
from datalabs.catalogue.schema import AssociatedMedia, DatalabMeta
from datalabs.catalogue.search import Catalogue
from datalabs.config import Settings
from datalabs.db.models import Datalab, DatalabVersion, Lab, Volume
from datalabs.errors import BadGateway, Conflict, NotFound
from datalabs.labs import service as labs
from datalabs.labs.jupyter import Jupyter, JupyterError
from datalabs.volumes.service import MOUNT_ROOT
from datalabs.workspaces import service as workspaces
from datalabs.workspaces.paths import Entry, in_dir, parts_of
from datalabs.workspaces.service import UsageCache
from datalabs.workspaces.tree import Tree
from datalabs.workspaces.upload import too_large

FOLDER = "from-explorer"  # where copies land in the personal workspace
WORKSPACE = "/media/home/my_workspace"  # the personal workspace inside a lab
MAX_SUFFIX = 1000


@dataclass(frozen=True)
class Opened:
    lab_id: str
    path: str  # absolute path of the file inside the lab
    url: str  # opens the file (JupyterLab) or else the lab
    lab_url: str
    placement: str  # "mounted" | "copied"
    launched: bool  # a new lab was launched for it (its start page leads there)
    token: str = ""  # the launched lab's API token: the caller spawns the lab after committing
    how: str = "file"  # "file" (url opens it), "notebook" (make one: assets/notebooks), "command", "show"
    media_type: str = ""
    asset_id: str = ""
    root: str = ""  # a Jupyter lab's root folder (paths in its URLs and API are below it)

    # A launched desktop lab's command: its app started with the file (LabManager.spawn's open_command).
    command: tuple[str, ...] = ()
    notice: str = ""  # a notebook was made but its first cell did not run: why


def how_it_opens(meta: DatalabMeta, media_type: str) -> AssociatedMedia | None:
    """How a lab of this datalab opens a file of `media_type` (its definition's `associatedMedia`), None
    if it does not. A JupyterLab's ways need a Jupyter server: it opens the URL or notebook we make."""
    how = meta.opener(media_type)
    if how is not None and how.open != "command" and meta.runtime.jupyter_root() is None:
        return None
    return how


@dataclass(frozen=True)
class Choice:
    """A running lab (`lab_id`) or a datalab to launch (`datalab`) that opens the file."""

    title: str
    how: str  # "notebook" | "file" | "command"
    preference: int
    kind: str = "web"
    lab_id: str = ""
    lab_name: str = ""
    mounted: bool = False  # the running lab has the file's volume
    datalab: str = ""


def choices(
    db: Session, catalogue: Catalogue, principal: Principal, record: AssetRecord
) -> tuple[list[Choice], list[Choice]]:
    """(running labs of the principal's, datalabs they may launch) that open the asset's file, best first."""
    entries = {e.name: e for e in catalogue.visible(db, principal)}
    running = []
    for lab in labs.list_for(db, principal, include_ended=False):
        if lab.state != "running" or lab.owner_id != principal.user.id:
            continue
        try:
            how = how_it_opens(_meta(db, lab), record.media_type)
        except Conflict:  # its datalab left the catalogue
            continue
        if how is not None:
            title = entries[lab.datalab].meta.title if lab.datalab in entries else lab.datalab
            running.append(
                Choice(
                    title,
                    how.open,
                    how.preference,
                    lab.kind,
                    lab_id=lab.id,
                    lab_name=lab.name or title,
                    mounted=record.collection in lab.volumes,
                )
            )
    launchable = [
        Choice(e.meta.title, how.open, how.preference, e.kind, datalab=e.name)
        for e in entries.values()  # as they see it: their default version
        if e.available and (how := how_it_opens(e.meta, record.media_type)) is not None
    ]
    best_first = lambda c: (-c.preference, c.title.lower())  # noqa: E731
    return sorted(running, key=best_first), sorted(launchable, key=best_first)


def open_asset(
    db: Session,
    settings: Settings,
    catalogue: Catalogue,
    assets: Assets,
    usage: UsageCache,
    principal: Principal,
    asset_id: str,
    *,
    lab_id: str | None = None,
    datalab: str | None = None,
    version: str | None = None,
) -> Opened:
    """Open asset `asset_id` in the principal's running lab `lab_id`, or in a new lab of `datalab`
    (launched with the asset's volume; the caller commits, then spawns it with `Opened.token`)."""
    if (lab_id is None) == (datalab is None):
        raise ValueError("give exactly one of lab_id and datalab")
    record = assets.get(asset_id, visible_collections(db, principal))
    volume = _volume(db, record)
    parts = parts_of(record.path)
    source = Tree(Path(volume.host_path))
    try:
        kind = source.stat(parts).type
    except NotFound:  # the index is older than the volume, or the volume is offline
        raise NotFound(
            f"the file of asset '{asset_id}' is not in data volume '{volume.name}': it was removed since "
            "it was indexed, or the volume is an archive listing whose files are not on this server",
            code="file_not_found",
        ) from None
    if kind != "file":
        raise Conflict(
            f"asset '{asset_id}' is not a regular file in volume '{volume.name}'", code="not_a_file"
        )
    token = ""
    if lab_id is not None:
        lab = _own_running_lab(db, principal, lab_id)
    else:
        request = labs.LaunchRequest(datalab=datalab, version=version, volumes=(volume.name,))
        lab, token = labs.create(db, settings, catalogue, principal, request)
    meta = _meta(db, lab)
    how = how_it_opens(meta, record.media_type)
    if how is None:
        raise Conflict(
            f"{meta.title} does not open {record.media_type} files; choose a datalab the dialog offers",
            code="cannot_open",
        )
    root = meta.runtime.jupyter_root()
    mounted = f"{MOUNT_ROOT}/{volume.name}/{record.path}"
    # A JupyterLab shows only files below its root; its kernels (notebooks) and desktop apps read any.
    if volume.name in lab.volumes and (root is None or how.open != "file" or _below(mounted, root)):
        path, placement = mounted, "mounted"
    else:
        copied = _copy(settings, usage, principal, source, parts)
        path, placement = f"{WORKSPACE}/{copied}", "copied"
    lab_url = f"/datalabs/{lab.id}/"
    shown = how.open == "file" and root and _below(path, root)
    url = f"{lab_url}lab/tree/{quote(_relative(path, root))}" if shown else lab_url
    # A running desktop cannot be told to start its app with the file: the page says where it is.
    way = "show" if how.open == "command" and not token else how.open
    # The path is absolute (never taken for an option) and only {path} is filled in: see LabManager.spawn.
    command = tuple(part.replace("{path}", path) for part in how.command) if way == "command" else ()
    return Opened(
        lab.id,
        path,
        url,
        lab_url,
        placement,
        launched=bool(token),
        token=token,
        how=way,
        media_type=record.media_type,
        asset_id=asset_id,
        root=root or "",
        command=command,
    )


async def open_file(
    state,
    db: Session,
    principal: Principal,
    asset_id: str,
    *,
    lab_id: str | None = None,
    datalab: str | None = None,
    version: str | None = None,
) -> Opened:
    """Open in Datalab, the whole user action (`state`: the app's state): place the file; a launched lab
    is committed, then started (a desktop's app with the file); in a running JupyterLab that opens it
    as a notebook, the notebook is made and its first cell run. The url returned opens the result."""

    def place() -> Opened:
        try:
            opened = open_asset(
                db,
                state.settings,
                state.catalogue,
                state.assets,
                state.usage,
                principal,
                asset_id,
                lab_id=lab_id,
                datalab=datalab,
                version=version,
            )
            if opened.launched and opened.command:  # kept for the manager replica that will start it
                db.get(Lab, opened.lab_id).runtime_state = {"open_command": list(opened.command)}
            db.commit()
        except BaseException:
            db.rollback()  # a launched lab's record and token go with the failure
            raise
        return opened

    opened = await to_thread.run_sync(place)  # a copy may take a while: not on the event loop
    if opened.launched:
        state.labs.spawn(opened.lab_id, opened.token, open_command=list(opened.command) or None)
    elif opened.how == "notebook":
        opened = await _notebook(await state.routes.get_route(opened.lab_id), opened)
    return opened


async def _notebook(route, opened: Opened) -> Opened:
    if route is None:
        raise Conflict("the lab is not reachable yet; try again in a moment", code="lab_not_ready")
    try:
        jupyter = Jupyter(route, opened.lab_url)
        made = await notebooks.open_as_notebook(
            jupyter, opened.media_type, opened.path, notebook_folder(opened)
        )
    except JupyterError as exc:
        raise BadGateway(f"the notebook could not be made in the lab: {exc}", code="lab_refused") from None
    return replace(opened, url=lab_file_url(opened, made.path), notice=made.error)


def notebook_folder(opened: Opened) -> str:
    """Where a notebook for the opened file goes, below the lab's Jupyter root: the workspace's
    from-explorer folder when the root holds the workspace, else the root itself."""
    if _below(f"{WORKSPACE}/{FOLDER}", opened.root):
        return _relative(f"{WORKSPACE}/{FOLDER}", opened.root)
    return ""


def lab_file_url(opened: Opened, relative: str) -> str:
    """The URL that opens `relative` (below the lab's Jupyter root) in the lab."""
    return f"{opened.lab_url}lab/tree/{quote(relative)}"


def _volume(db: Session, record: AssetRecord) -> Volume:
    volume = db.scalar(select(Volume).where(Volume.name == record.collection))
    if volume is None:  # e.g. an archive listing ingested without its files
        raise Conflict(
            f"asset '{record.id}' belongs to collection '{record.collection}', which is not a data volume "
            "of this platform: its file cannot be opened in a lab",
            code="no_volume",
        )
    return volume


def _own_running_lab(db: Session, principal: Principal, lab_id: str) -> Lab:
    lab = db.get(Lab, lab_id)
    if lab is None or lab.owner_id != principal.user.id:
        raise NotFound(f"no lab '{lab_id}'", code="lab_not_found")
    if lab.state != "running":
        raise Conflict(
            f"lab '{lab.name}' is {lab.state}, not running: "
            "open the file in a running lab or launch a new one",
            code="lab_not_running",
        )
    return lab


def _meta(db: Session, lab: Lab) -> DatalabMeta:
    row = db.scalar(
        select(DatalabVersion)
        .join(Datalab)
        .where(Datalab.name == lab.datalab, DatalabVersion.version == lab.version)
    )
    if row is None:
        raise Conflict(
            f"lab '{lab.name}' runs datalab '{lab.datalab}' {lab.version}, which the catalogue no longer has",
            code="datalab_gone",
        )
    return DatalabMeta.model_validate(row.meta)


def _below(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(root)


def _relative(path: str, root: str) -> str:
    return str(PurePosixPath(path).relative_to(root))


def _copy(
    settings: Settings, usage: UsageCache, principal: Principal, source: Tree, parts: tuple[str, ...]
) -> str:
    """Copy the file into `from-explorer/` of the personal workspace; its path there. A copy made by an
    earlier open (same size and modification time) is reused rather than copied again."""
    space = workspaces.personal(settings, principal.user)
    with in_dir(source.root, parts[:-1]) as dfd:
        st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
    src = Entry.of(parts, st)
    for _attempt in range(3):
        dest, done = _target(space.tree, parts[-1], src)
        if done:
            return "/".join(dest)
        free = usage.free(space)
        if src.size > free:
            raise too_large(f"'{parts[-1]}' ({src.size:,} bytes)", free)
        # Tree.copy writes under a temporary name and renames: the name only ever holds a whole copy.
        try:
            source.copy(parts, space.tree, dest)
        except Conflict as exc:
            if exc.code == "exists":  # the name was taken meanwhile (a concurrent open): the next one
                continue
            raise
        with in_dir(space.tree.root, dest[:-1]) as dfd:  # the source's time marks it as that file's copy
            os.utime(dest[-1], ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        usage.add(space, src.size)
        return "/".join(dest)
    raise Conflict(
        f"'{FOLDER}/{parts[-1]}' kept changing while it was being copied; try again", code="exists"
    )


def _target(tree: Tree, name: str, src: Entry) -> tuple[tuple[str, ...], bool]:
    """The first free name for a copy of `src` (False), or an earlier copy of it to reuse (True)."""
    for candidate in _names(name):
        dest = (FOLDER, candidate)
        try:
            existing = tree.stat(dest)
        except NotFound:
            return dest, False
        if existing.type == "file" and existing.size == src.size and existing.modified == src.modified:
            return dest, True
    raise Conflict(f"'{FOLDER}' already holds {MAX_SUFFIX} files named like '{name}'", code="exists")


def _names(name: str):
    """`name`, then `stem (1).ext`, `stem (2).ext`, ... (the extension kept: `.crx.gz` stays whole)."""
    yield name
    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
    for n in range(1, MAX_SUFFIX):
        yield f"{stem} ({n}){dot}{ext}"
