"""'New data' triggers on a saved asset search (pipelines/trigger_assets.py): files a harvest puts in the
index that match the search start one run each, as the owner, once; what the owner may not see, or what
was there before the trigger, never fires."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from datalabs.assets.base import AssetRecord
from datalabs.assets.harvest import harvest_volume
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.db.models import PipelineRun, Volume
from datalabs.pipelines.trigger_watch import Watcher
from tests.pipelines.conftest import COUNT, register


@pytest.fixture
def settings(tmp_path, db_url):
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        server={"roles": ["api", "proxy"]},
        pipelines={"worker": False},
    )


def _runs(sessions) -> list[tuple[str, dict]]:
    with sessions() as db:
        return [(r.owner.name, r.inputs) for r in db.scalars(select(PipelineRun).order_by(PipelineRun.id))]


def test_harvested_assets_matching_a_saved_search_fire_once(app, people, settings, tmp_path):
    people.user("ada", groups=("gnss",))
    people.user("bob")
    ada, bob = people.login("ada"), people.login("bob")
    volume = tmp_path / "volume"
    volume.mkdir()
    with transaction(app.state.sessions) as db:
        db.add(Volume(name="Demo", host_path=str(volume), allowed_groups=["gnss"]))
    register(ada, "count", COUNT)
    register(bob, "count-bob", COUNT)
    search = {"collection": "Demo", "q": "obs"}
    for client, name in ((ada, "count"), (bob, "count-bob")):
        r = client.post(
            f"/api/v1/pipelines/{name}/triggers", json={"kind": "new_data", "config": {"search": search}}
        )
        assert r.status_code == 201, r.text  # bob may save any search: it only ever shows him his volumes
    bad = ada.post("/api/v1/pipelines/count/triggers",
                   json={"kind": "new_data", "config": {"search": {"bbox": "1,2,3"}}})  # fmt: skip
    assert bad.status_code == 422, bad.text
    index = app.state.assets.writer()
    # Indexed before the trigger (an old file): never fires.
    old = datetime(2020, 1, 1, tzinfo=UTC)
    index.ingest([AssetRecord(collection="Demo", path="obs-old.txt", size=3, modified=old)])
    (volume / "obs-1.txt").write_text("1\n2\n")
    (volume / "notes.txt").write_text("x\n")  # not matching the search's words
    harvest_volume(index, volume, "Demo", tmp_path / "state")
    watcher = Watcher(settings, app.state.sessions)
    queued, _ = watcher.scan()
    assert len(queued) == 1
    assert [(owner, inputs["data"]["location"]) for owner, inputs in _runs(app.state.sessions)] == [
        ("ada", "volume:Demo/obs-1.txt")
    ]
    assert watcher.scan()[0] == []
    engine, fresh = open_database(settings.database_url)  # a restart: the index and the events agree
    try:
        assert Watcher(settings, fresh).scan()[0] == []
    finally:
        engine.dispose()
    # The next harvest's new match fires; the trigger's event names the file.
    (volume / "obs-2.txt").write_text("3\n")
    harvest_volume(index, volume, "Demo", tmp_path / "state")
    watcher.index_changed()  # as the indexer's `written` signal says (else seen at its next refresh)
    assert len(watcher.scan()[0]) == 1
    events = ada.get("/api/v1/pipelines/count/triggers").json()[0]
    detail = ada.get(f"/api/v1/triggers/{events['id']}").json()["events"][0]["detail"]
    assert detail == "new file volume:Demo/obs-2.txt"
    assert all(owner == "ada" for owner, _ in _runs(app.state.sessions))
