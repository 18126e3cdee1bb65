"""The edge demo end to end (issue 18, Build 2): a synthetic station writes a low-fidelity stream and the
high-fidelity data with 3 injected events into a data volume; the `event-recorder` system pipeline runs,
through the platform's runs and cwltool, over every low-fidelity chunk; the station's retention keeps the
windows and ages the rest out; the explorer finds the 3 windows, dated by their events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from datalabs.db.engine import transaction
from datalabs.db.models import Volume
from datalabs.demo import station as st
from tests.cli.test_cli import run as cli
from tests.pipelines.conftest import wait_run

pytestmark = pytest.mark.slow

START = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
MINUTES = 8


def _ws(settings, run):
    return settings.home / "workspaces/users/ada" / run["output_dir"].removeprefix("me/")


def _settled(admin, name, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        status = admin.get(f"/api/v1/volumes/{name}/harvest").json()
        if not status["active"] or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _chunk_ref(minute: int, kind: str) -> str:
    folder = st.LOWFI if kind == st.LOWFI else st.HIFI
    return f"volume:station/{folder}/{st.chunk_name('DEMO01', START + timedelta(minutes=minute), kind)}"


@pytest.fixture
def station(app, tmp_path):
    out = tmp_path / "station"
    events = st.run(out, start=START, minutes=MINUTES, events=3, seed=18)
    with transaction(app.state.sessions) as db:
        db.add(Volume(name="station", host_path=str(out)))
        db.add(Volume(name="station-events", host_path=str(out / st.KEPT)))
    return out, events


def test_three_events_are_kept_the_rest_ages_out_and_the_explorer_finds_them(people, settings, station):
    out, injected = station
    assert len(injected) == 3
    people.user("root", role="admin")
    people.user("ada")
    ada, admin = people.login("ada"), people.login("root")
    submitted = []
    for minute in range(MINUTES):
        # As a trigger will start it: the new low-fi file, and the station's high-fi folder as a constant.
        body = {
            "inputs": {"lowfi": _chunk_ref(minute, st.LOWFI), "hifi_dir": "volume:station/hifi", "margin": 5}
        }
        made = ada.post("/api/v1/pipelines/event-recorder/runs", json=body)
        assert made.status_code == 202, made.text
        submitted.append(made.json()["id"])
    found = []
    for run_id in submitted:
        run = wait_run(ada, run_id, timeout=180)
        assert run["state"] == "succeeded", ada.get(f"/api/v1/runs/{run_id}/logs").text
        listed = json.loads((_ws(settings, run) / "events.json").read_text())["events"]
        found += listed
        kept = sorted(p.name for p in _ws(settings, run).glob("*_event.nc"))
        assert kept == sorted(e["kept"] for e in listed)  # an empty run keeps nothing
    assert len(found) == 3
    for event, truth in zip(sorted(found, key=lambda e: e["time"]), injected, strict=True):
        when = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        assert abs((when - truth.time).total_seconds()) <= 1.0  # the 1 Hz stream dates it to the second
        assert event["kept"] and event["coverage"] == 1.0 and event["station"] == "DEMO01"

    # The station's retention: the windows are kept, every high-fidelity chunk older than 0 s ages out.
    workspace = settings.home / "workspaces/users/ada"
    retained = cli(
        settings.home, "demo", "station", "--out", str(out), "--age-out", "--retention", "0",
        "--keep-from", str(workspace),
    ).stdout  # fmt: skip
    assert f"kept 3 new window(s); aged out {MINUTES} high-fidelity chunk(s)" in retained
    assert list((out / st.HIFI).iterdir()) == []
    assert len(list((out / st.LOWFI).iterdir())) == MINUTES  # the cheap stream stays
    assert sorted(p.name for p in (out / st.KEPT).iterdir()) == sorted(e["kept"] for e in found)

    # The explorer: the kept folder is the 'station-events' collection, each window dated by its event.
    assert admin.post("/api/v1/volumes/station-events/harvest").status_code == 202
    assert _settled(admin, "station-events")["state"] == "done"
    page = ada.get("/api/v1/assets/search", params={"collection": "station-events"}).json()
    assert page["total"] == 3, page
    by_name = {item["path"]: item for item in page["items"]}
    for event in found:
        item = by_name[event["kept"]]
        assert item["start"].replace("+00:00", "Z").startswith(event["time"][:19])
    window = ada.get(
        "/api/v1/assets/search",
        params={"q": "event", "station": "DEMO01", "datetime": f"{found[0]['time']}/.."},
    ).json()
    assert window["total"] >= 1 and all(i["path"].endswith("_event.nc") for i in window["items"])


def test_a_chunk_without_events_keeps_nothing_and_a_wrong_file_fails_clearly(people, settings, station):
    out, injected = station
    quiet = next(m for m in range(MINUTES) if m not in {e.minute for e in injected})
    people.user("ada")
    ada = people.login("ada")
    body = {"inputs": {"lowfi": _chunk_ref(quiet, st.LOWFI), "hifi": [_chunk_ref(quiet, st.HIFI)]}}
    run = wait_run(ada, ada.post("/api/v1/pipelines/event-recorder/runs", json=body).json()["id"], 120)
    assert run["state"] == "succeeded", ada.get(f"/api/v1/runs/{run['id']}/logs").text
    assert json.loads((_ws(settings, run) / "events.json").read_text())["events"] == []
    assert list(_ws(settings, run).glob("*_event.nc")) == []
    # A high-fidelity chunk given as the low-fidelity stream: refused with the line and the reason.
    body = {"inputs": {"lowfi": _chunk_ref(quiet, st.HIFI)}}
    run = wait_run(ada, ada.post("/api/v1/pipelines/event-recorder/runs", json=body).json()["id"], 120)
    assert run["state"] == "failed" and "event-recorder: line" in run["reason"], run


def test_the_recorder_is_a_system_pipeline_with_its_form(people):
    people.user("ada")
    ada = people.login("ada")
    described = ada.get("/api/v1/pipelines/event-recorder").json()
    assert described["system"] is True, described
    inputs = {i["id"]: i for i in described["inputs"]}
    assert set(inputs) == {"lowfi", "hifi", "hifi_dir", "margin", "threshold", "window"}
    assert inputs["margin"]["default"] == 10
    page = ada.get("/pipelines/event-recorder")
    assert page.status_code == 200 and "Low-fidelity chunk" in page.text
