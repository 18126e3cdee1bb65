"""Asset search API: shapes of DESIGN §6, facets, parameters, and visibility through volumes."""

from __future__ import annotations

import pytest

from tests.assets.seed import seed


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
