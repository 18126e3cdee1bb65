"""The system pipelines shipped with Datalabs, on real demo archive files from a data volume."""

from __future__ import annotations

import json

import pytest

from datalabs.db.engine import transaction
from datalabs.db.models import Volume
from datalabs.volumes import demo
from tests.pipelines.conftest import wait_run

pytestmark = pytest.mark.slow


@pytest.fixture
def archive(app, settings):
    gssc, planck = settings.home.parent / "gssc", settings.home.parent / "planck"
    demo.write_gssc(gssc)
    demo.write_planck(planck)
    with transaction(app.state.sessions) as db:
        db.add(Volume(name="GsscDataProducts", host_path=str(gssc)))
        db.add(Volume(name="PlanckPublic", host_path=str(planck)))
    return {"gssc": gssc, "planck": planck}


def _ws(settings, run):
    return settings.home / "workspaces/users/ada" / run["output_dir"].removeprefix("me/")


def test_system_pipelines_are_listed_for_everyone(people):
    people.user("ada")
    names = {
        p["name"]: p for p in people.login("ada").get("/api/v1/pipelines", params={"kind": "system"}).json()
    }
    assert {"hello-world", "rinex-summary", "fits-thumbnail"} <= set(names)
    assert names["hello-world"]["inputs"][0]["default"] == "Hello, Datalabs!"


def test_hello_world_banner(people, settings):
    people.user("ada")
    ada = people.login("ada")
    run = wait_run(
        ada, ada.post("/api/v1/pipelines/hello-world/runs", json={"inputs": {"text": "Hi"}}).json()["id"]
    )
    assert run["state"] == "succeeded", run
    assert (_ws(settings, run) / "banner.txt").read_text() == "+====+\n| Hi |\n+====+\n"


@pytest.mark.parametrize(
    "name", ["ESA100DEU_R_20100640000_01D_30S_MO.rnx", "ESA100DEU_R_20100640000_01D_30S_MO.crx.gz"]
)
def test_rinex_summary_of_a_volume_file(people, settings, archive, name):
    people.user("ada")
    ada = people.login("ada")
    ref = f"volume:GsscDataProducts/rinex/2010/064/{name}"
    run = ada.post("/api/v1/pipelines/rinex-summary/runs", json={"inputs": {"rinex": ref}}).json()
    run = wait_run(ada, run["id"])
    assert run["state"] == "succeeded", ada.get(f"/api/v1/runs/{run['id']}/logs").text
    summary = json.loads((_ws(settings, run) / "summary.json").read_text())
    assert (
        summary["station"] == "ESA100DEU" and summary["epochs"] > 0 and 0 < summary["completeness_pct"] <= 100
    )
    assert summary["satellites"] > 0 and "GPS" in summary["satellites_per_system"]


def test_rinex_summary_of_a_navigation_file_fails_clearly(people, archive):
    people.user("ada")
    ada = people.login("ada")
    ref = "volume:GsscDataProducts/rinex/2010/064/BRDC00WRD_R_20100640000_01D_GN.rnx"
    run = wait_run(
        ada, ada.post("/api/v1/pipelines/rinex-summary/runs", json={"inputs": {"rinex": ref}}).json()["id"]
    )
    assert run["state"] == "failed" and "is not an observation file" in run["reason"]


def test_fits_thumbnail(people, settings, archive):
    people.user("ada")
    ada = people.login("ada")
    fits = next(archive["planck"].rglob("*.fits")).relative_to(archive["planck"])
    body = {"inputs": {"fits": f"volume:PlanckPublic/{fits}", "size": 64}}
    run = wait_run(ada, ada.post("/api/v1/pipelines/fits-thumbnail/runs", json=body).json()["id"])
    assert run["state"] == "succeeded", ada.get(f"/api/v1/runs/{run['id']}/logs").text
    png = (_ws(settings, run) / "thumbnail.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "SIMPLE" in (_ws(settings, run) / "header.txt").read_text()
