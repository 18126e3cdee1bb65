"""The launch page for team-scoped datalabs (issue 18): the team is chosen on the form, checked on the
server (a team of the user's, with a workspace), and a second launch for the team opens the running lab.
Ordinary datalabs offer the MLflow tracking team. With the fake runtime (no sandbox needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Lab
from datalabs.workspaces import service as workspaces
from tests.web.labs_support import FAKE, lab_settings, launch, launched, wait_state

TEAM_LAB = FAKE.format(title="Team Lab", version="1.0", command="fake-lab").replace(
    "  kind: web\n", "  kind: web\n  scope: team\n"
)


@pytest.fixture
def settings(tmp_path: Path, catalogue_dir: Path) -> Settings:
    (catalogue_dir / "teamlab").mkdir(parents=True)
    (catalogue_dir / "teamlab" / "datalab-meta.yml").write_text(TEAM_LAB)
    return lab_settings(tmp_path, catalogue_dir)


@pytest.fixture
def teams(client, user):
    """bob (the logged-in user) in astro (with a workspace) and nobody's helio (with one too);
    bob is also in noworkspace, which has none."""
    with transaction(client.app.state.sessions) as db:
        root = accounts.create_user(db, "root", "long-enough-pw", role="admin")
        for team in ("astro", "helio", "noworkspace"):
            accounts.create_group(db, team)
        accounts.set_member(db, "astro", "bob")
        accounts.set_member(db, "noworkspace", "bob")
        admin = Principal(user=root, groups=frozenset())
        for team in ("astro", "helio"):
            workspaces.create_team_workspace(db, client.app.state.settings, admin, team, None)
    return user


def test_a_team_lab_is_launched_for_a_team_of_the_users_once(teams):
    page = teams.get("/catalogue/teamlab/launch").text
    assert '<select id="team" name="team"' in page and '<option value="astro"' in page
    assert "One per team" in page and "first of my teams" not in page

    missing = launch(teams, "teamlab")
    assert missing.status_code == 422 and "name the team to launch it for" in missing.text
    for team, status, words in (
        ("helio", 404, "not a member of a team"),  # exists, not bob's: same as a team that does not
        ("nosuch", 404, "not a member of a team"),
        ("noworkspace", 422, "has no workspace"),
        ("../astro", 404, "not a member of a team"),
    ):
        refused = launch(teams, "teamlab", team=team)
        assert refused.status_code == status and words in refused.text, (team, refused.text[-400:])

    first = launched(teams, "teamlab", team="astro")
    assert wait_state(teams, first)["state"] == "running"
    again = launched(teams, "teamlab", team="astro")
    assert again == first  # the running one, not a second
    with transaction(teams.app.state.sessions) as db:
        lab = db.get(Lab, first)
        assert (lab.team, lab.tracking_team) == ("astro", None)
        assert db.query(Lab).filter(Lab.datalab == "teamlab").count() == 1


def test_an_ordinary_lab_offers_the_tracking_team_and_refuses_a_model(teams):
    page = teams.get("/catalogue/fake/launch").text
    assert "The first of my teams with a tracking server running" in page
    assert 'name="model"' not in page
    lab_id = launched(teams, "fake", team="astro")
    with transaction(teams.app.state.sessions) as db:
        lab = db.get(Lab, lab_id)
        assert (lab.team, lab.tracking_team) == (None, "astro")  # still bob's alone
    refused = launch(teams, "fake", team="helio")
    assert refused.status_code == 404
    refused = launch(teams, "fake", model="models:/x/1")
    assert refused.status_code == 422 and "model-serving datalab" in refused.text, refused.text[
        refused.text.find('role="alert"') :
    ][:300]
