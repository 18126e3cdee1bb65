"""The platform each batch of tests/api/test_authorization.py runs on, and the rows its paths name: tess's
token, lab (running, stopped or shared with mia), pipeline with a run, schedule and trigger, app, team
workspace and volume; and who calls."""

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from datalabs.config import Settings
from tests.catalogue.test_builds import tiny_datalab
from tests.catalogue.test_loader import GOOD, write
from tests.conftest import People
from tests.share_support import VIEWABLE_YAML

PIPE = "/api/v1/pipelines/private-pipe"
TINY_CWL = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: 'true'\ninputs: []\noutputs: []\n"
APP = "/api/v1/apps/tess-app"
VIEWER = """\
title: Viewer
version: '1'
runtime: {kind: desktop, desktop: {command: [fake-lab]}}
associatedMedia: [{encodingFormat: application/octet-stream, command: [fake-lab, "{path}"]}]
"""


def settings_for(where: Path, db_url: str) -> Settings:
    root = where / "defs"
    write(root, "team-lab", GOOD.replace("Good Lab", "Team Lab") + "allowed_groups: [astro]\n")
    write(root, "fake", f"title: Fake\nversion: '1'\nruntime: {{kind: web, command: [{VIEWABLE_YAML}]}}\n")
    # A desktop that opens any file of an unknown type (the asset below has no type): Open in Datalab.
    write(root, "viewer", VIEWER)
    tiny_datalab(root)  # the platform builds its environment
    return Settings(
        home=where / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [root]},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
    )


@contextmanager
def platform(where: Path, db_url: str) -> Iterator[People]:
    """A fresh platform with the matrix's users: ada (no team), mia (astro), root (admin), tess (owns
    what the paths name)."""
    from datalabs.app import create_app  # imported late, as in tests/conftest.py

    app = create_app(settings_for(where, db_url))
    with TestClient(app) as client:
        people = People(app, client)
        people.user("ada")
        people.user("mia", groups=("astro",))
        people.user("root", role="admin")
        people.user("tess")
        yield people


def rows_for(people, method: str, path: str, body):
    """The rows `path` names, made as tess: returns the concrete path and body."""
    tess = people.tess = people.login("tess")
    if "{token_id}" in path:
        path = path.replace("{token_id}", tess.post("/api/v1/tokens", json={"name": "x"}).json()["id"])
    if "{lab_id}" in path:
        path = path.replace("{lab_id}", tess.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"])
        if path.endswith("/restart"):
            assert tess.post(path.replace("/restart", "/stop"), json={}).json()["state"] == "stopped"
        if "/shares" in path or path.endswith("/guests"):
            _share_mia(tess, path, share=method == "DELETE")
    _team_and_volume(people, path)
    path = _pipeline(people, path, tess)
    _app(people, path)
    if isinstance(body, dict) and body.get("host_path") == "{volume_dir}":
        body = {**body, "host_path": str(people.app.state.settings.home.parent / "volume")}
    return path, body


def caller(people, who: str):
    """(client, extra headers) for `who`: logged in (cookie and CSRF header), a narrow token, or nobody."""
    if who == "anonymous":
        return people.client, {}
    if who == "narrow":
        return people.client, people.token("root", ["labs:read"])
    if who == "owner":
        return people.tess, {}
    return people.login({"user": "ada", "member": "mia", "admin": "root", "reader": "val"}[who]), {}


def _share_mia(tess, path: str, share: bool) -> None:
    """tess's lab running (shares need it) and, for `share`, shared with mia."""
    lab = path.split("/")[4]
    for _ in range(100):
        if tess.get(f"/api/v1/labs/{lab}").json()["state"] == "running":
            break
        time.sleep(0.05)
    if share:
        assert tess.put(f"/api/v1/labs/{lab}/shares/mia", json={"mode": "view"}).status_code == 200


def _pipeline(people, path: str, tess) -> str:
    """tess's pipeline shared with `astro`, a run and a schedule of hers, for the pipeline rows."""
    if not path.startswith(
        ("/api/v1/pipelines/private-pipe", "/api/v1/runs/", "/api/v1/schedules/", "/api/v1/triggers/")
    ):
        return path
    shared = {"name": "private-pipe", "cwl": TINY_CWL, "allowed_groups": ["astro"]}
    assert tess.post("/api/v1/pipelines", json=shared).status_code == 201
    if "{run_id}" in path:
        path = path.replace("{run_id}", tess.post(f"{PIPE}/runs", json={}).json()["id"])
    if "{schedule_id}" in path:
        schedule = tess.post(f"{PIPE}/schedules", json={"cron": "0 3 * * *"}).json()
        path = path.replace("{schedule_id}", str(schedule["id"]))
    if "{trigger_id}" in path:
        trigger = tess.post(f"{PIPE}/triggers", json={"kind": "webhook"}).json()
        path = path.replace("{trigger_id}", str(trigger["id"]))
    return path


def _app(people, path: str) -> None:
    """tess's app shared with `astro`, with one version whose build failed, for the app rows."""
    if not path.startswith(APP):
        return
    from datalabs.accounts.principal import Principal
    from datalabs.accounts.service import get_user
    from datalabs.builder import service as apps
    from datalabs.db.engine import transaction

    def fill(staging):
        staging.write("datalab-meta.yml", io.BytesIO(b"title: T\nabstract: A\n"))
        return "test"

    settings = people.app.state.settings
    with transaction(people.app.state.sessions) as db:
        tess = Principal(user=get_user(db, "tess"), groups=frozenset())
        app = apps.create(db, tess, "tess-app")
        app.shared_groups = ["astro"]
        version = apps.add_version(db, settings, tess, app, fill, source_kind="upload")
        version.state = "failed"


def _team_and_volume(people, path: str) -> None:
    """The team workspace, memberships and volume the workspace and volume rows of the matrix use."""
    if not path.startswith(("/api/v1/workspaces", "/api/v1/volumes", "/api/v1/assets", "/stac")):
        return
    from datalabs.accounts import service
    from datalabs.db.engine import transaction
    from datalabs.db.models import TeamWorkspace, Volume

    settings = people.app.state.settings
    people.user("val")
    volume = settings.home.parent / "volume"
    volume.mkdir(exist_ok=True)
    (volume / "a.txt").write_text("archive")
    with transaction(people.app.state.sessions) as db:
        service.create_group(db, "optics")
        for group, user, role in (("astro", "tess", "owner"), ("astro", "val", "readonly")):
            service.set_member(db, group, user, role)
        for user, role in (("tess", "owner"), ("val", "readonly")):
            service.set_member(db, "optics", user, role)
        db.add(TeamWorkspace(group_id=service.get_group(db, "astro").id))
        db.add(Volume(name="Demo", host_path=str(volume), allowed_groups=["astro"]))
    from datalabs.assets.base import AssetRecord

    people.app.state.assets.index.ingest([AssetRecord(collection="Demo", path="a.txt", size=7)])
    team = settings.home / "workspaces" / "teams" / "astro"
    team.mkdir(parents=True, exist_ok=True)
    (team / "shared.txt").write_text("team file")
