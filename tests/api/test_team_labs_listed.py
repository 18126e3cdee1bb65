"""Team-scoped labs (tracking servers, served models) listed to their team's members (issue 18): in
GET /api/v1/labs with their `team` and launching `owner`, and on the labs page under "My teams' labs".
Who sees what, as anonymous, another user, a team member, the owner and an administrator outside the
team; with the fake runtime (a team-scoped fake datalab)."""

from __future__ import annotations

import pytest

from datalabs.config import Settings
from tests.api.test_labs import FAKE, wait_state
from tests.catalogue.test_loader import write

TEAM_FAKE = FAKE.replace("  kind: web\n", "  kind: web\n  scope: team\n")


@pytest.fixture
def settings(tmp_path, db_url):
    root = tmp_path / "defs"
    write(root, "fake", FAKE.format(command="fake-lab"))
    write(root, "teamlab", TEAM_FAKE.format(command="fake-lab"))
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [root], "builtin": False},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
    )


@pytest.fixture
def world(people):
    """ada (astro) runs astro's team lab and a lab of her own; bob is in astro, cy in helio, root an
    administrator in no team."""
    people.user("root", role="admin")
    people.user("ada", groups=("astro",))
    people.user("bob", groups=("astro",))
    people.user("cy", groups=("helio",))
    root = people.login("root")
    for team in ("astro", "helio"):
        assert root.post("/api/v1/workspaces", json={"team": team}).status_code == 201
    ada = people.login("ada")
    team_lab = ada.post("/api/v1/labs", json={"datalab": "teamlab", "team": "astro"}).json()["id"]
    own = ada.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"]
    for lab in (team_lab, own):
        assert wait_state(ada, lab)["state"] == "running"
    return people, team_lab, own


def listed(client, query: str = "") -> dict[str, dict]:
    r = client.get(f"/api/v1/labs{query}")
    assert r.status_code == 200, r.text
    ids = [lab["id"] for lab in r.json()]
    assert len(ids) == len(set(ids)), ids  # never twice
    return {lab["id"]: lab for lab in r.json()}


def test_who_sees_a_teams_lab_in_the_list(world):
    people, team_lab, own = world
    bob, cy, ada, root = (people.login(u) for u in ("bob", "cy", "ada", "root"))
    assert people.client.get("/api/v1/labs").status_code == 401  # anonymous

    seen = listed(bob)  # a member of the team: the team's lab, marked as the team's; not ada's own lab
    assert set(seen) == {team_lab}
    assert (seen[team_lab]["team"], seen[team_lab]["owner"]) == ("astro", "ada")
    assert set(listed(bob, "?active=true")) == {team_lab}
    assert set(listed(bob, "?all=true")) == {team_lab}  # not an administrator: all=true widens nothing
    assert listed(cy) == {}  # another team's user
    assert set(listed(ada)) == {team_lab, own}  # the owner: once, as before
    assert listed(root) == {}  # an administrator outside the team: not in their own list...
    assert {team_lab, own} <= set(listed(root, "?all=true"))  # ...but in every user's
    narrow = people.token("bob", scopes=["files:read"])
    assert people.client.get("/api/v1/labs", headers=narrow).status_code == 403

    stopped = ada.post(f"/api/v1/labs/{team_lab}/stop")
    assert stopped.status_code in (200, 202), stopped.text
    assert wait_state(ada, team_lab, ("stopped",))["state"] == "stopped"
    assert listed(bob) == {}  # an ended team lab stays in its launcher's history only
    assert set(listed(ada)) == {team_lab, own}


def test_the_labs_page_lists_the_teams_labs_to_members(world):
    people, team_lab, own = world
    section = 'id="h-team"'
    page = people.login("bob").get("/labs").text
    assert section in page and f'data-lab="{team_lab}"' in page and 'data-team="astro"' in page
    assert 'launched by <strong class="lab-owner">ada</strong>' in page
    assert f'data-lab="{own}"' not in page
    for who in ("cy", "root", "ada"):  # another team's user, an administrator outside it, the owner
        page = people.login(who).get("/labs").text
        assert section not in page, who
    assert f'data-lab="{team_lab}"' in page  # the owner's: among her own labs
    anonymous = people.client.get("/labs", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
