"""Open in Datalab (service): the mounted path when the lab mounts the asset's volume, a copy in the
workspace otherwise (atomic, quota-checked, suffixed on a clash, reused when unchanged), and refusals
for other people's labs, labs not running and volumes the user may not see."""

from __future__ import annotations

import os
import secrets

import pytest

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import get_user, user_groups
from datalabs.assets import opening
from datalabs.assets.base import AssetRecord
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Lab, Volume
from datalabs.errors import Conflict, DatalabsError, NotFound, TooLarge
from datalabs.workspaces import layout
from tests.catalogue.test_loader import write

JUPYTER = """\
title: {title}
version: "1.0"
runtime:
  kind: web
  command: [jupyter-lab, "--ServerApp.sock={{socket}}", "--ServerApp.root_dir={root}"]
associatedMedia:
  - {{encodingFormat: [application/x-rinex, "text/*"], open: file, preference: {preference}}}
  - {{encodingFormat: image/fits, open: notebook}}
"""
DESKTOP = """\
title: Viewer
version: "1.0"
runtime: {kind: desktop, desktop: {command: [xterm]}}
associatedMedia: [{encodingFormat: application/x-rinex, command: [xterm, -e, less, "{path}"], preference: 60}]
"""
PLAIN = 'title: Plain\nversion: "1.0"\nruntime: {kind: web, command: [jupyter-lab]}\n'  # opens nothing
GNSS = "GsscOpen:obs/2024/001/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
DATA = b"compressed RINEX" * 64


@pytest.fixture
def settings(tmp_path, db_url):
    defs = tmp_path / "defs"
    write(defs, "notebook", JUPYTER.format(title="Notebook", root="/media/home/my_workspace", preference=50))
    write(defs, "wide", JUPYTER.format(title="Wide Notebook", root="/media", preference=70))
    write(defs, "viewer", DESKTOP)
    write(defs, "plain", PLAIN)
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [defs], "builtin": False},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
        workspaces={"user_quota": 10_000},
    )


@pytest.fixture
def world(app, people, tmp_path):
    """Volumes GsscOpen (everyone; one real file) and AstroSecret (group astro), their assets, ada and mia."""
    for name in ("GsscOpen", "AstroSecret"):
        (tmp_path / name).mkdir()
    gnss = tmp_path / "GsscOpen" / GNSS.split(":", 1)[1]
    gnss.parent.mkdir(parents=True)
    gnss.write_bytes(DATA)
    (tmp_path / "GsscOpen" / "image.fits").write_bytes(b"SIMPLE")
    (tmp_path / "AstroSecret" / "secret.fits").write_bytes(b"SIMPLE")
    with transaction(app.state.sessions) as db:
        db.add(Volume(name="GsscOpen", host_path=str(tmp_path / "GsscOpen"), allowed_groups=[]))
        db.add(Volume(name="AstroSecret", host_path=str(tmp_path / "AstroSecret"), allowed_groups=["astro"]))
    app.state.assets.index.ingest(
        [
            AssetRecord(
                collection="GsscOpen",
                path=GNSS.split(":", 1)[1],
                size=len(DATA),
                media_type="application/x-rinex",
            ),
            AssetRecord(collection="GsscOpen", path="image.fits", size=6, media_type="image/fits"),
            AssetRecord(collection="AstroSecret", path="secret.fits", size=6, media_type="image/fits"),
            AssetRecord(collection="Listing", path="not/here.rnx", size=1),
        ]
    )
    people.user("ada")
    people.user("mia", groups=("astro",))
    return app


def principal(db, name: str) -> Principal:
    user = get_user(db, name)
    return Principal(user=user, groups=frozenset(user_groups(db, user.id)))


def running_lab(app, owner: str, datalab: str, volumes: list[str], state: str = "running") -> str:
    lab_id = secrets.token_hex(8)
    with transaction(app.state.sessions) as db:
        user = get_user(db, owner)
        db.add(
            Lab(
                id=lab_id,
                owner_id=user.id,
                name=f"{datalab} of {owner}",
                datalab=datalab,
                version="1.0",
                state=state,
                volumes=volumes,
            )
        )
    return lab_id


def open_(app, who: str, asset_id: str = GNSS, **where) -> opening.Opened:
    with app.state.sessions() as db:
        opened = opening.open_asset(
            db,
            app.state.settings,
            app.state.catalogue,
            app.state.assets,
            app.state.usage,
            principal(db, who),
            asset_id,
            **where,
        )
        db.commit()
        return opened


def workspace(app, who: str):
    return layout.user_dir(app.state.settings, who)


def test_a_lab_that_mounts_the_volume_gets_the_mounted_path_and_a_jupyter_url(world):
    lab = running_lab(world, "ada", "wide", ["GsscOpen"])
    opened = open_(world, "ada", lab_id=lab)
    rel = GNSS.split(":", 1)[1]
    assert opened.placement == "mounted"
    assert opened.path == f"/media/data/GsscOpen/{rel}"
    assert opened.url == f"/datalabs/{lab}/lab/tree/data/GsscOpen/{rel}"  # relative to its root, /media
    assert not (workspace(world, "ada") / "from-explorer").exists()  # nothing copied


def test_a_desktop_lab_gets_the_mounted_path_and_its_own_url(world):
    lab = running_lab(world, "ada", "viewer", ["GsscOpen"])
    opened = open_(world, "ada", lab_id=lab)
    assert (opened.placement, opened.url) == ("mounted", f"/datalabs/{lab}/")
    assert opened.path.startswith("/media/data/GsscOpen/obs/2024/001/")


def test_without_the_volume_the_file_is_copied_into_the_workspace_atomically(world):
    lab = running_lab(world, "ada", "notebook", [])
    opened = open_(world, "ada", lab_id=lab)
    name = GNSS.rsplit("/", 1)[1]
    assert opened.placement == "copied"
    assert opened.path == f"/media/home/my_workspace/from-explorer/{name}"
    assert opened.url == f"/datalabs/{lab}/lab/tree/from-explorer/{name}"
    folder = workspace(world, "ada") / "from-explorer"
    assert (folder / name).read_bytes() == DATA
    assert [p.name for p in folder.iterdir()] == [name]  # no temporary file left behind


def test_a_jupyterlab_whose_root_excludes_the_mount_gets_a_copy_it_can_open(world):
    lab = running_lab(world, "ada", "notebook", ["GsscOpen"])  # mounted, but outside Jupyter's root
    opened = open_(world, "ada", lab_id=lab)
    assert opened.placement == "copied"
    assert opened.url.startswith(f"/datalabs/{lab}/lab/tree/from-explorer/")


def test_an_unchanged_copy_is_reused_and_a_different_file_of_that_name_gets_a_suffix(world):
    lab = running_lab(world, "ada", "notebook", [])
    first = open_(world, "ada", lab_id=lab)
    assert open_(world, "ada", lab_id=lab).path == first.path  # the same file again: no second copy
    name = GNSS.rsplit("/", 1)[1]
    (workspace(world, "ada") / "from-explorer" / name).write_bytes(b"my own edits")
    again = open_(world, "ada", lab_id=lab)
    stem = name.split(".", 1)[0]
    assert again.path == f"/media/home/my_workspace/from-explorer/{stem} (1).crx.gz"
    assert (workspace(world, "ada") / "from-explorer" / name).read_bytes() == b"my own edits"


def test_a_copy_over_the_quota_is_refused_and_leaves_nothing(world):
    lab = running_lab(world, "ada", "notebook", [])
    (workspace(world, "ada") / "big.bin").write_bytes(b"x" * (10_000 - len(DATA) + 1))
    with pytest.raises(TooLarge) as exc:
        open_(world, "ada", lab_id=lab)
    assert exc.value.status == 413 and "quota" in exc.value.message
    folder = workspace(world, "ada") / "from-explorer"
    assert not folder.exists() or not list(folder.iterdir())


def test_a_failed_copy_leaves_no_temporary_file(world, monkeypatch):
    lab = running_lab(world, "ada", "notebook", [])

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", broken)
    with pytest.raises(DatalabsError, match="disk is full"):
        open_(world, "ada", lab_id=lab)
    assert list((workspace(world, "ada") / "from-explorer").iterdir()) == []


def test_assets_of_a_volume_not_allowed_to_the_user_are_not_found(world):
    lab = running_lab(world, "ada", "notebook", [])
    with pytest.raises(NotFound) as exc:
        open_(world, "ada", "AstroSecret:secret.fits", lab_id=lab)
    assert exc.value.code == "asset_not_found"
    mia_lab = running_lab(world, "mia", "notebook", [])
    assert open_(world, "mia", "AstroSecret:secret.fits", lab_id=mia_lab).placement == "copied"


def test_another_users_lab_is_not_found_and_a_stopped_lab_conflicts(world):
    mia_lab = running_lab(world, "mia", "notebook", [])
    with pytest.raises(NotFound) as exc:
        open_(world, "ada", lab_id=mia_lab)
    assert exc.value.code == "lab_not_found" and mia_lab in exc.value.message
    assert not (workspace(world, "mia") / "from-explorer").exists()
    stopped = running_lab(world, "ada", "notebook", [], state="stopped")
    with pytest.raises(Conflict) as exc:
        open_(world, "ada", lab_id=stopped)
    assert exc.value.code == "lab_not_running" and "stopped" in exc.value.message


def test_an_asset_without_a_volume_or_without_its_file_cannot_be_opened(world, tmp_path):
    lab = running_lab(world, "ada", "notebook", [])
    world.state.assets.index.ingest([AssetRecord(collection="GsscOpen", path="gone.rnx", size=1)])
    with transaction(world.state.sessions) as db:  # admins see every collection, listings included
        get_user(db, "ada").role = "admin"
    with pytest.raises(Conflict) as exc:
        open_(world, "ada", "Listing:not/here.rnx", lab_id=lab)
    assert exc.value.code == "no_volume" and "Listing" in exc.value.message
    with pytest.raises(NotFound) as exc:
        open_(world, "ada", "GsscOpen:gone.rnx", lab_id=lab)
    assert exc.value.code == "file_not_found" and "archive listing" in exc.value.message


def test_launching_a_new_lab_mounts_the_volume(world):
    opened = open_(world, "ada", datalab="viewer")
    assert opened.launched and opened.token and opened.placement == "mounted"
    with world.state.sessions() as db:
        lab = db.get(Lab, opened.lab_id)
        assert (lab.datalab, lab.volumes, lab.state) == ("viewer", ["GsscOpen"], "pending")
    # A JupyterLab whose root is the workspace: the volume is mounted and the file copied for its URL.
    notebook = open_(world, "ada", datalab="notebook")
    assert notebook.placement == "copied" and "/lab/tree/from-explorer/" in notebook.url


def test_jupyter_root_comes_from_the_definition():
    from datalabs.catalogue.schema import DatalabMeta

    def meta(command, kind="web"):
        runtime = (
            {"kind": kind, "command": command}
            if kind == "web"
            else {"kind": kind, "desktop": {"command": command}}
        )
        return DatalabMeta.model_validate({"name": "x", "title": "X", "version": "1", "runtime": runtime})

    def root(command, kind="web"):
        return meta(command, kind).runtime.jupyter_root()

    assert root(["jupyter-lab", "--ServerApp.root_dir=/media/"]) == "/media"
    assert root(["/usr/bin/jupyter-lab"]) == "/media/home/my_workspace"  # its cwd
    assert root(["fake-lab", "--ServerApp.root_dir=/media"]) is None
    assert root(["topcat"], kind="desktop") is None


def test_only_a_jupyter_server_opens_files_or_notebooks_and_the_preferred_way_wins():
    from datalabs.catalogue.schema import DatalabMeta

    def meta(command, media):
        runtime = {"kind": "web", "command": command}
        return DatalabMeta.model_validate(
            {"name": "x", "title": "X", "version": "1", "runtime": runtime, "associatedMedia": media}
        )

    both = [
        {"encodingFormat": "image/*", "open": "file", "preference": 10},
        {"encodingFormat": ["IMAGE/FITS"], "open": "notebook", "preference": 90},
    ]
    assert opening.how_it_opens(meta(["jupyter-lab"], both), "image/fits").open == "notebook"
    assert opening.how_it_opens(meta(["jupyter-lab"], both), "image/png").open == "file"  # image/*
    assert opening.how_it_opens(meta(["jupyter-lab"], both), "text/plain") is None
    assert opening.how_it_opens(meta(["fake-lab"], both), "image/fits") is None  # no Jupyter to open it


def test_the_choices_are_the_datalabs_that_open_the_type_best_first(world):
    running_lab(world, "ada", "viewer", ["GsscOpen"])
    running_lab(world, "ada", "plain", ["GsscOpen"])
    running_lab(world, "mia", "wide", ["GsscOpen"])  # not ada's
    with world.state.sessions() as db:
        who = principal(db, "ada")
        rinex = world.state.assets.get(GNSS, {"GsscOpen"})
        running, launchable = opening.choices(db, world.state.catalogue, who, rinex)
        assert [(c.lab_name, c.how, c.mounted) for c in running] == [("viewer of ada", "command", True)]
        assert [(c.datalab, c.how) for c in launchable] == [
            ("wide", "file"),  # preference 70
            ("viewer", "command"),  # 60
            ("notebook", "file"),  # 50; "plain" opens nothing
        ]
        fits = world.state.assets.get("GsscOpen:image.fits", {"GsscOpen"})
        running, launchable = opening.choices(db, world.state.catalogue, who, fits)
        assert running == [] and [(c.datalab, c.how) for c in launchable] == [
            ("notebook", "notebook"),
            ("wide", "notebook"),
        ]


def test_a_datalab_that_does_not_open_the_type_is_refused_and_launches_nothing(world):
    lab = running_lab(world, "ada", "plain", ["GsscOpen"])
    with pytest.raises(Conflict) as refused:
        open_(world, "ada", lab_id=lab)
    assert refused.value.code == "cannot_open" and "does not open application/x-rinex files" in str(
        refused.value
    )
    with pytest.raises(Conflict):
        open_(world, "ada", "GsscOpen:image.fits", datalab="viewer")  # a viewer of RINEX only
    with world.state.sessions() as db:
        assert db.query(Lab).filter(Lab.datalab == "viewer").count() == 0  # the launch was not kept


def test_a_launched_desktop_starts_its_app_with_the_file_a_running_one_is_told_where_it_is(world):
    launched = open_(world, "ada", datalab="viewer")
    path = f"/media/data/GsscOpen/{GNSS.split(':', 1)[1]}"
    assert (launched.how, launched.command) == ("command", ("xterm", "-e", "less", path))
    with world.state.sessions() as db:
        db.get(Lab, launched.lab_id).state = "running"
        db.commit()
    running = open_(world, "ada", lab_id=launched.lab_id)
    assert (running.how, running.command, running.path) == ("show", (), path)


def test_a_notebook_reads_the_mounted_file_even_outside_the_jupyter_root(world):
    lab = running_lab(world, "ada", "notebook", ["GsscOpen"])  # its root is the workspace
    opened = open_(world, "ada", "GsscOpen:image.fits", lab_id=lab)
    assert (opened.how, opened.placement, opened.path) == (
        "notebook",
        "mounted",
        "/media/data/GsscOpen/image.fits",
    )
    assert opening.notebook_folder(opened) == "from-explorer"  # below its root
    assert not (workspace(world, "ada") / "from-explorer").exists()  # nothing copied: the kernel reads it


def test_a_name_taken_by_a_concurrent_open_moves_on_to_the_next_name(world, monkeypatch):
    lab = running_lab(world, "ada", "notebook", [])
    name = GNSS.rsplit("/", 1)[1]
    real_copy = opening.Tree.copy

    def racing_copy(self, src, dest, dst):
        if dst[-1] == name:  # another open writes the file just before this one renames into place
            (workspace(world, "ada") / "from-explorer").mkdir(exist_ok=True)
            (workspace(world, "ada") / "from-explorer" / name).write_bytes(b"theirs")
        return real_copy(self, src, dest, dst)

    monkeypatch.setattr(opening.Tree, "copy", racing_copy)
    opened = open_(world, "ada", lab_id=lab)
    assert opened.path.endswith(f"/from-explorer/{name.split('.', 1)[0]} (1).crx.gz")
    assert (workspace(world, "ada") / "from-explorer" / name).read_bytes() == b"theirs"  # not overwritten
