"""Indexing data volumes from the platform (volumes/indexing.py): the recorded status of a harvest, the
queue (one harvest of a volume at a time) and the schedule."""

from __future__ import annotations

import json
import time

import pytest

from datalabs.assets.engine import BitmapIndex
from datalabs.db.engine import transaction
from datalabs.db.models import Volume
from datalabs.errors import Conflict
from datalabs.volumes import indexing
from tests.assets.samples import write_fits


@pytest.fixture
def volume(tmp_path):
    root = tmp_path / "PlanckPublic"
    (root / "maps").mkdir(parents=True)
    write_fits(root / "maps" / "good.fits")
    (root / "maps" / "broken.fits").write_bytes(b"SIMPLE  =  not a header at all")
    return root


def test_a_harvest_records_its_counts_and_the_files_it_could_not_read(tmp_path, volume):
    state = tmp_path / "harvest"
    index = BitmapIndex(tmp_path / "index")
    seen = []
    status = indexing.Status("PlanckPublic", requested_by="ada", queued_at=time.time())
    indexing.harvest(index, volume, status, state, progress=lambda done, todo: seen.append((done, todo)))
    assert status.state == "done" and status.seen == 2 and status.added == 2 and seen[-1] == (2, 2)
    assert [path for path, _ in status.errors] == ["maps/broken.fits"] and status.errors[0][1]
    recorded = indexing.read_status(state, "PlanckPublic")
    assert recorded == status and not recorded.active
    assert index.stats()["assets"] == 2  # the unreadable file stays findable by name
    (volume / "maps" / "new.fits").write_bytes((volume / "maps" / "good.fits").read_bytes())
    again = indexing.harvest(index, volume, indexing.Status("PlanckPublic"), state)
    assert (again.added, again.unchanged, again.todo) == (1, 2, 1)  # only the new file was read


def test_a_harvest_cut_short_reads_as_interrupted_and_a_missing_folder_as_failed(tmp_path, volume):
    state = tmp_path / "harvest"
    indexing.write_status(state, indexing.Status("PlanckPublic", state="running", started_at=time.time()))
    cut = indexing.read_status(state, "PlanckPublic")
    assert cut.state == "interrupted" and "stopped" in cut.message
    gone = indexing.Status("Gone")
    with pytest.raises(FileNotFoundError):
        indexing.harvest(BitmapIndex(tmp_path / "index"), tmp_path / "nowhere", gone, state)
    assert indexing.read_status(state, "Gone").state == "failed"
    assert "does not exist" in indexing.read_status(state, "Gone").message
    (state / "Broken.status.json").write_text("{not json")
    assert indexing.read_status(state, "Broken").state == "never"  # a damaged record is no harvest
    assert not list(state.glob("*.tmp"))  # written whole or not at all


def test_one_harvest_of_a_volume_at_a_time_and_the_schedule_queues_what_is_due(settings, sessions, volume):
    with transaction(sessions) as db:
        db.add(Volume(name="PlanckPublic", host_path=str(volume), description="", allowed_groups=[]))
    settings.assets.harvest_every_minutes = 60
    indexer = indexing.VolumeIndexer(settings, sessions, lambda: BitmapIndex(settings.home / "idx"))
    assert indexer.queue_due() == ["PlanckPublic"]  # never harvested: due at once
    assert indexer.status("PlanckPublic").state == "queued"
    with transaction(sessions) as db:
        planck = db.query(Volume).one()
        with pytest.raises(Conflict, match="already being indexed"):
            indexer.request(planck, "ada")
    assert indexer.queue_due() == []
    indexer.start()
    try:
        deadline = time.monotonic() + 60
        while indexer.status("PlanckPublic").active and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        indexer.stop()
    done = indexer.status("PlanckPublic")
    assert done.state == "done" and done.requested_by == "schedule" and done.seen == 2
    assert indexer.queue_due() == []  # harvested just now
    assert indexer.queue_due(now=time.time() + 3601) == ["PlanckPublic"]
    record = json.loads((settings.home / "assets" / "harvest" / "PlanckPublic.status.json").read_text())
    assert record["state"] == "queued" and record["requested_by"] == "schedule"


def test_a_replica_that_does_not_index_refuses_a_harvest_and_records_nothing(settings, sessions, volume):
    from datalabs.errors import Unavailable

    with transaction(sessions) as db:
        db.add(Volume(name="PlanckPublic", host_path=str(volume), description="", allowed_groups=[]))
    indexer = indexing.VolumeIndexer(settings, sessions, lambda: BitmapIndex(settings.home / "idx"))
    indexer.here = False  # another replica holds the manager lease: the index has one writer
    with transaction(sessions) as db, pytest.raises(Unavailable, match="replica that manages labs"):
        indexer.request(db.query(Volume).one(), "ada")
    assert indexer.status("PlanckPublic").state == "never"
    assert indexer.queue_due() == []
