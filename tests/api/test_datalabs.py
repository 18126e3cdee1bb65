import time

import pytest

from datalabs.config import Settings
from datalabs.runtimes import gpus
from tests.catalogue.test_builds import tiny_datalab
from tests.catalogue.test_loader import GOOD, write


@pytest.fixture
def settings(tmp_path, db_url):
    root = tmp_path / "defs"
    write(root, "team-lab", GOOD.replace("Good Lab", "Team Lab") + "allowed_groups: [astro]\n")
    write(root, "broken", "title: [")
    tiny_datalab(root)  # an environment of its own, built from a wheel in its folder
    return Settings(
        home=tmp_path / "home", db={"url": db_url}, auth={"secret_key": "k"}, catalogue={"dirs": [root]}
    )


def test_search_and_filters(people):
    people.user("ada")
    c = people.login("ada")
    everything = c.get("/api/v1/datalabs").json()
    assert everything["total"] >= 10 and "team-lab" not in {d["name"] for d in everything["items"]}
    desktop = c.get("/api/v1/datalabs", params={"kind": "desktop"}).json()
    assert desktop["total"] >= 7 and {d["kind"] for d in desktop["items"]} == {"desktop"}
    both = c.get("/api/v1/datalabs", params=[("kind", "desktop"), ("kind", "web")]).json()
    assert both["total"] == everything["total"]
    gnss = c.get("/api/v1/datalabs", params={"mission": "GNSS"}).json()
    assert [d["name"] for d in gnss["items"]] == ["jupyterlab-gnss"]
    assert {f["value"] for f in everything["facets"]["kind"]} == {"web", "desktop"}
    topcat = c.get("/api/v1/datalabs", params={"q": "topcat"}).json()["items"][0]
    assert topcat["name"] == "topcat"
    # available where the desktop runtime and TOPCAT are installed; otherwise it says which package is missing
    assert topcat["available"] or "Debian package" in topcat["unavailable_reason"]
    assert c.get("/api/v1/datalabs", params={"limit": 0}).status_code == 422


def test_detail_versions_and_thumbnail(people):
    people.user("ada")
    c = people.login("ada")
    detail = c.get("/api/v1/datalabs/jupyterlab").json()
    assert detail["version"] == "4.3.0" and detail["versions"] == ["4.3.0", "4.2.0"]
    assert detail["meta"]["contactPoint"]["organisation-name"] and "_thumbnail_path" not in detail["meta"]
    versions = c.get("/api/v1/datalabs/jupyterlab/versions").json()
    assert [v["version"] for v in versions] == ["4.3.0", "4.2.0"]
    assert c.get("/api/v1/datalabs/jupyterlab/versions/4.2.0").json()["version"] == "4.2.0"
    assert c.get("/api/v1/datalabs/jupyterlab/versions/9.9").status_code == 404
    thumb = c.get(detail["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/svg")
    assert c.get("/api/v1/datalabs/jupyterlab/thumbnail", params={"version": "4.2.0"}).status_code == 200
    assert c.get("/api/v1/datalabs/nope").status_code == 404


def test_group_restricted_datalab_is_404_for_non_members(people):
    people.user("ada")
    people.user("mia", groups=("astro",))
    people.user("root", role="admin")
    assert people.login("ada").get("/api/v1/datalabs/team-lab").status_code == 404
    assert people.login("ada").get("/api/v1/datalabs/team-lab/thumbnail").status_code == 404
    assert people.login("mia").get("/api/v1/datalabs/team-lab").status_code == 200
    assert people.login("root").get("/api/v1/datalabs/team-lab").status_code == 200
    assert "team-lab" in {d["name"] for d in people.login("mia").get("/api/v1/datalabs").json()["items"]}


def names(client, headers=None, **params) -> list[str]:
    r = client.get("/api/v1/datalabs", params=params, headers=headers or {})
    assert r.status_code == 200, r.text
    return [d["name"] for d in r.json()["items"]]


def test_a_remembered_search_follows_membership_and_catalogue_changes(people, settings):
    """The same search, asked again and again with one token, answers for the team the user is in now and
    the catalogue as it is now: a membership change or a reload is seen on the next request."""
    people.user("ada")
    people.user("mia", groups=("astro",))
    people.user("root", role="admin")
    ada, admin, c = people.token("ada"), people.login("root"), people.client
    assert "team-lab" not in names(c, ada, q="lab") and "team-lab" not in names(c, ada, q="lab")
    assert admin.put("/api/v1/groups/astro/members/ada").status_code == 200
    assert "team-lab" in names(c, ada, q="lab")
    assert admin.delete("/api/v1/groups/astro/members/ada").status_code == 204
    assert "team-lab" not in names(c, ada, q="lab")
    # a new definition and a reload: the remembered search gives way at once
    write(settings.catalogue.dirs[0], "later-lab", GOOD.replace("Good Lab", "Later Lab"))
    assert "later-lab" not in names(c, ada, q="later")
    assert admin.post("/api/v1/catalogue/reload").status_code == 200
    assert names(c, ada, q="later") == ["later-lab"]


def test_a_team_members_remembered_search_is_not_served_to_outsiders(people):
    """Hostile: a member's and an admin's searches are remembered first; an outsider asking the very same
    (same words, filters, page) gets only what they may see, in the results and in the facet counts."""
    people.user("mia", groups=("astro",))
    people.user("root", role="admin")
    people.user("eve", groups=("gnss",))
    c = people.client
    for insider in (people.token("mia"), people.token("root")):
        assert "team-lab" in names(c, insider, q="team")
        assert "team-lab" in names(c, insider, limit=500)
    inside = names(c, people.token("mia"), q="team")
    eve = people.token("eve")
    assert names(c, eve, q="team") == [n for n in inside if n != "team-lab"]
    assert "team-lab" not in names(c, eve, limit=500)
    body = c.get("/api/v1/datalabs", params={"q": "team"}, headers=eve)
    assert b"team-lab" not in body.content and b"Team Lab" not in body.content
    kinds = body.json()["facets"]["kind"]  # one kind per datalab: the counts add up to what eve sees
    assert sum(k["count"] for k in kinds) == body.json()["total"] == len(inside) - 1
    assert c.get("/api/v1/datalabs/team-lab", headers=eve).status_code == 404


def test_search_bodies_are_the_response_models(people):
    """The search is answered from remembered JSON: it must be exactly what `DatalabSearch` gives."""
    from datalabs.api.datalabs import DatalabSearch

    people.user("ada")
    c, ada = people.client, people.token("ada")
    for params in ({}, {"q": "lab"}, {"kind": "desktop", "limit": 3, "offset": 2}, {"q": "nothing-at-all"}):
        first = c.get("/api/v1/datalabs", params=params, headers=ada)
        again = c.get("/api/v1/datalabs", params=params, headers=ada)  # remembered this time
        assert first.headers["content-type"] == "application/json" and first.content == again.content
        assert DatalabSearch.model_validate_json(first.content).model_dump_json().encode() == first.content


def test_problems_visible_to_admins_only(people):
    people.user("ada")
    people.user("root", role="admin")
    assert people.login("ada").get("/api/v1/catalogue/problems").status_code == 403
    problems = people.login("root").get("/api/v1/catalogue/problems").json()
    assert len(problems) == 1 and problems[0]["path"].endswith("broken/datalab-meta.yml")
    assert "not valid YAML" in problems[0]["reason"]
    assert people.login("root").post("/api/v1/catalogue/reload", json={}).json() == problems


def test_admins_build_a_datalabs_environment_and_follow_it(people):
    people.user("root", role="admin")
    people.user("ada")
    root, ada = people.login("root"), people.login("ada")
    assert not ada.get("/api/v1/datalabs/tiny").json()["available"]
    pending = {b["name"]: b for b in root.get("/api/v1/catalogue/builds").json()}
    assert {"tiny", "jupyterlab-gnss", "jupyterlab-astro"} <= set(pending) and "jupyterlab" not in pending
    assert pending["tiny"]["state"] == "never"

    started = root.post("/api/v1/datalabs/tiny/build")
    assert started.status_code == 202 and started.json()["state"] == "queued", started.text
    deadline = time.monotonic() + 120
    while (build := root.get("/api/v1/datalabs/tiny/build").json())["active"]:
        assert time.monotonic() < deadline, build
        time.sleep(0.1)
    assert build["state"] == "built" and not build["error"], build
    assert build["log"][-1].startswith("BUILD SUCCEEDED") and build["requested_by"] == "root"
    detail = ada.get("/api/v1/datalabs/tiny").json()
    assert detail["available"], detail["unavailable_reason"]
    assert "_build" not in detail["meta"] and "envs" not in str(detail)  # server paths stay private


def test_build_refusals(people):
    people.user("root", role="admin")
    people.user("ada")
    root, ada = people.login("root"), people.login("ada")
    assert ada.post("/api/v1/datalabs/tiny/build").status_code == 403
    assert ada.get("/api/v1/datalabs/tiny/build").status_code == 403
    nothing = root.post("/api/v1/datalabs/jupyterlab/build")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_build"
    assert root.post("/api/v1/datalabs/no-such-lab/build").status_code == 404
    assert root.get("/api/v1/datalabs/tiny/build", params={"version": "9"}).status_code == 404
    assert root.get("/api/v1/datalabs/tiny/build", params={"version": "../../x"}).status_code == 404


@pytest.mark.skipif(bool(gpus.discover()), reason="this host has GPUs: jupyterlab-gpu is not refused here")
def test_the_gpu_datalab_is_not_available_without_a_gpu_and_says_why(people):
    people.user("ada")
    people.user("root", role="admin")
    ada = people.login("ada")
    detail = ada.get("/api/v1/datalabs/jupyterlab-gpu").json()
    assert (detail["available"], detail["unavailable_reason"]) == (False, "needs a GPU; this server has none")
    launch = ada.post("/api/v1/labs", json={"datalab": "jupyterlab-gpu"})
    assert launch.status_code == 422 and launch.json()["error"]["code"] == "unavailable"
    assert "needs a GPU; this server has none" in launch.json()["error"]["message"]
    # Its environment (PyTorch with CUDA libraries: gigabytes) is not built on a host that cannot run it.
    assert "jupyterlab-gpu" not in {
        b["name"] for b in people.login("root").get("/api/v1/catalogue/builds").json()
    }
