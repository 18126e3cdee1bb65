"""Asset search API: shapes of DESIGN §6, facets, parameters, and visibility through volumes."""

from __future__ import annotations

import pytest

from datalabs.config import Settings
from tests.api.test_labs import wait_state
from tests.assets.seed import seed
from tests.catalogue.test_loader import write

GNSS = "GsscOpen:obs/2024/001/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"


FAKE = """\
title: Fake
version: "1"
runtime: {kind: desktop, desktop: {command: [fake-lab]}}
associatedMedia: [{encodingFormat: application/x-rinex, command: [fake-lab, "{path}"]}]
"""


@pytest.fixture
def settings(tmp_path, db_url):
    """A fake desktop datalab that opens RINEX files (the fake runtime), and a small quota for mia."""
    write(tmp_path / "defs", "fake", FAKE)
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [tmp_path / "defs"], "builtin": False},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
        workspaces={"quotas": {"user:mia": 10}},
    )


@pytest.fixture
def seeded(app, people, tmp_path):
    seed(app, tmp_path)
    people.user("ada")
    people.user("mia", groups=("astro",))
    people.user("root", role="admin")
    return people


def test_search_shape_and_facets(seeded):
    ada = seeded.login("ada")
    r = ada.get("/api/v1/assets/search", params={"station": "ABMF00GLP,KIRU00SWE", "constellation": "GPS"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"total", "items", "facets", "took_ms"}
    assert body["total"] == 20
    assert len(body["items"]) == 20
    stations = {f["value"]: f["count"] for f in body["facets"]["station"]}
    assert stations == {"ABMF00GLP": 10, "KIRU00SWE": 10, "ZIM200CHE": 10}  # other values keep counts
    assert {f["value"]: f["count"] for f in body["facets"]["constellation"]} == {"GPS": 20, "GLONASS": 20}
    first = body["items"][0]
    assert first["start"].startswith("2024-01-10")  # newest first
    assert first["href"].startswith("/api/v1/volumes/GsscOpen/files/obs/2024/010/")


def test_text_time_bbox_sort_and_paging(seeded):
    ada = seeded.login("ada")
    get = lambda **p: ada.get("/api/v1/assets/search", params=p).json()  # noqa: E731
    assert get(q="zim2 GO")["total"] == 10
    assert get(datetime="2024-01-03T00:00:00Z/2024-01-05T00:00:00Z")["total"] == 12
    assert get(datetime="2024-01-09T00:00:00Z/..")["total"] == 12
    assert get(bbox="0,40,30,70")["total"] == 40  # Kiruna and Zimmerwald
    names = [i["name"] for i in get(sort="name", limit=3, offset=1)["items"]]
    assert names == sorted(names) and names[0].startswith("ABMF00GLP_R_2024001")
    assert get(limit=5, offset=58)["items"][-1]["start"].startswith("2024-01-01")


def test_get_asset(seeded):
    ada = seeded.login("ada")
    asset_id = "GsscOpen:obs/2024/001/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
    r = ada.get(f"/api/v1/assets/{asset_id}")
    assert r.status_code == 200, r.text
    assert r.json()["facets"]["station"] == ["ABMF00GLP"]
    assert r.json()["bbox"] == [-61.528, 16.262, -61.528, 16.262]
    assert ada.get("/api/v1/assets/GsscOpen:obs/nothing.rnx").status_code == 404


def test_assets_of_a_volume_are_visible_only_to_users_allowed_that_volume(seeded):
    def collections(client):
        body = client.get("/api/v1/assets/search").json()
        return {f["value"]: f["count"] for f in body["facets"]["collection"]}, body["total"]

    assert collections(seeded.login("ada")) == ({"GsscOpen": 60}, 60)
    assert collections(seeded.login("mia")) == ({"GsscOpen": 60, "AstroSecret": 1}, 61)
    assert collections(seeded.login("root")) == ({"GsscOpen": 60, "AstroSecret": 1, "Unregistered": 1}, 62)
    assert seeded.login("ada").get("/api/v1/assets/AstroSecret:jwst/secret_nircam.fits").status_code == 404
    assert seeded.login("mia").get("/api/v1/assets/AstroSecret:jwst/secret_nircam.fits").status_code == 200
    hidden = seeded.login("ada").get("/api/v1/assets/search", params={"collection": "AstroSecret"}).json()
    assert hidden["total"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "1,2,3"},
        {"bbox": "a,b,c,d"},
        {"bbox": "0,80,10,70"},
        {"datetime": "yesterday"},
        {"datetime": "2024-02-01T00:00:00Z/2024-01-01T00:00:00Z"},
        {"sort": "size"},
        {"limit": "5000"},
        {"offset": "-1"},
    ],
)
def test_bad_parameters_are_clear_4xx(seeded, params):
    r = seeded.login("ada").get("/api/v1/assets/search", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["message"]


# ---- Open in Datalab --------------------------------------------------------------------------------


@pytest.fixture
def archive(seeded, tmp_path):
    """The file behind GNSS really on the GsscOpen volume."""
    path = tmp_path / "GsscOpen" / GNSS.split(":", 1)[1]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RINEX observations")
    return seeded


def running(client, **fields) -> str:
    lab = client.post("/api/v1/labs", json={"datalab": "fake", **fields}).json()
    assert wait_state(client, lab["id"])["state"] == "running"
    return lab["id"]


def test_open_in_a_lab_that_mounts_the_volume(archive):
    ada = archive.login("ada")
    lab = running(ada, volumes=["GsscOpen"])
    r = ada.post(f"/api/v1/assets/{GNSS}/open", json={"lab_id": lab})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "lab_id": lab,
        "path": "/media/data/GsscOpen/" + GNSS.split(":", 1)[1],
        "url": f"/datalabs/{lab}/",  # not a JupyterLab: the lab, and the path to show
        "lab_url": f"/datalabs/{lab}/",
        "placement": "mounted",
        "launched": False,
        "how": "show",  # a running desktop: the path to open in it
        "notice": "",
    }


def test_open_copies_into_the_workspace_when_the_lab_lacks_the_volume(archive):
    ada = archive.login("ada")
    lab = running(ada)
    body = ada.post(f"/api/v1/assets/{GNSS}/open", json={"lab_id": lab}).json()
    name = GNSS.rsplit("/", 1)[1]
    assert (body["placement"], body["path"]) == ("copied", f"/media/home/my_workspace/from-explorer/{name}")
    copy = ada.get(f"/api/v1/workspaces/me/files/from-explorer/{name}")
    assert copy.status_code == 200 and copy.content == b"RINEX observations"


def test_open_launching_a_new_lab_with_the_volume(archive):
    ada = archive.login("ada")
    r = ada.post(f"/api/v1/assets/{GNSS}/open", json={"datalab": "fake"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["launched"] and (body["placement"], body["how"]) == ("mounted", "command")
    lab = wait_state(ada, body["lab_id"])
    assert (lab["state"], lab["volumes"]) == ("running", ["GsscOpen"])


@pytest.mark.parametrize(
    ("who", "asset", "payload", "status", "code"),
    [
        ("ada", "GsscOpen:obs/nothing.rnx", "own", 404, "asset_not_found"),
        ("ada", "AstroSecret:jwst/secret_nircam.fits", "own", 404, "asset_not_found"),
        ("ada", GNSS, "others", 404, "lab_not_found"),
        ("ada", GNSS, "stopped", 409, "lab_not_running"),
        ("ada", GNSS, {"datalab": "nope"}, 404, "datalab_not_found"),
        ("ada", GNSS, {}, 422, None),
        ("ada", GNSS, {"lab_id": "x", "datalab": "fake"}, 422, None),
        ("root", "Unregistered:stray.txt", "own", 409, "no_volume"),
        ("mia", GNSS, "own", 413, "quota_exceeded"),
    ],
)
def test_open_errors_are_precise(archive, who, asset, payload, status, code):
    client = archive.login(who)
    if payload in ("own", "stopped"):
        lab = running(client)
        if payload == "stopped":
            assert client.post(f"/api/v1/labs/{lab}/stop", json={}).status_code < 300
        payload = {"lab_id": lab}
    elif payload == "others":
        payload = {"lab_id": running(archive.login("mia"))}
    r = client.post(f"/api/v1/assets/{asset}/open", json=payload)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    else:
        assert "lab_id" in error["message"] and "datalab" in error["message"]


def test_open_needs_a_token_that_may_write_files_or_launch(archive):
    ada = archive.login("ada")
    lab = running(ada)
    headers = archive.token("ada", ["assets:read"])
    r = archive.client.post(f"/api/v1/assets/{GNSS}/open", json={"lab_id": lab}, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "insufficient_scope")
    headers = archive.token("ada", ["assets:read", "files:write"])
    r = archive.client.post(f"/api/v1/assets/{GNSS}/open", json={"lab_id": lab}, headers=headers)
    assert r.status_code == 200, r.text
    r = archive.client.post(f"/api/v1/assets/{GNSS}/open", json={"datalab": "fake"}, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "insufficient_scope")


def test_launching_for_an_asset_needs_files_write_too(archive):
    headers = archive.token("ada", ["assets:read", "labs:write"])  # it may copy into the workspace
    r = archive.client.post(f"/api/v1/assets/{GNSS}/open", json={"datalab": "fake"}, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "insufficient_scope")
    assert "files:write" in r.json()["error"]["message"]
    headers = archive.token("ada", ["assets:read", "labs:write", "files:write"])
    r = archive.client.post(f"/api/v1/assets/{GNSS}/open", json={"datalab": "fake"}, headers=headers)
    assert r.status_code == 200, r.text
