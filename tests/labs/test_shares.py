"""The share service (issue 19): who may share which lab with whom, and what a grantee then holds."""

from __future__ import annotations

import pytest

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import get_user, user_groups
from datalabs.db.models import Lab
from datalabs.errors import Conflict, Invalid, NotFound
from datalabs.labs import shares
from tests.share_support import add_datalab


def _who(db, name: str) -> Principal:
    user = get_user(db, name)
    return Principal(user=user, groups=frozenset(user_groups(db, user.id)))


def _lab(db, owner: str, lab_id: str, state: str = "running", team: str | None = None) -> str:
    db.add(
        Lab(id=lab_id, owner_id=get_user(db, owner).id, datalab="fake", version="1", state=state, team=team)
    )
    db.commit()
    return lab_id


@pytest.fixture
def world(people, app):
    people.user("ada", groups=("astro",))
    people.user("bob")
    people.user("cy", groups=("astro",))
    people.user("root", role="admin")
    with app.state.sessions() as db:
        add_datalab(db, "fake", "1")  # a lab that enforces view
        _lab(db, "ada", "labrun1")
        _lab(db, "ada", "labstop1", state="stopped")
        _lab(db, "ada", "labteam1", team="astro")
    return app.state.sessions


def test_the_owner_shares_changes_the_mode_lists_and_revokes(world):
    with world() as db:
        ada = _who(db, "ada")
        shares.share(db, ada, "labrun1", "bob", "view")
        shares.share(db, ada, "labrun1", "team:astro", "view")
        assert shares.mode_for(db, "labrun1", "bob", frozenset()) == "view"
        assert shares.mode_for(db, "labrun1", "cy", frozenset({"astro"})) == "view"
        shares.share(db, ada, "labrun1", "bob", "collaborate")  # again: the mode changes
        listed = [(s.grantee, s.mode, s.created_by) for s in shares.list_shares(db, ada, "labrun1")]
        assert listed == [("bob", "collaborate", "ada"), ("team:astro", "view", "ada")]
        shares.unshare(db, ada, "labrun1", "bob")
        assert shares.mode_for(db, "labrun1", "bob", frozenset()) is None
        assert shares.mode_for(db, "labrun1", "bob", frozenset({"astro"})) == "view"  # via the team
        with pytest.raises(NotFound):
            shares.unshare(db, ada, "labrun1", "bob")


@pytest.mark.parametrize("actor", ["root", "cy", "bob"])  # admin, team member, other user: not the owner
def test_only_the_owner_shares_and_others_learn_nothing(world, actor):
    with world() as db:
        who = _who(db, actor)
        for call in (
            lambda: shares.share(db, who, "labrun1", "bob" if actor != "bob" else "cy", "view"),
            lambda: shares.list_shares(db, who, "labrun1"),
            lambda: shares.unshare(db, who, "labrun1", "bob"),
        ):
            with pytest.raises(NotFound) as unknown:
                call()
            assert unknown.value.code == "lab_not_found"  # the same answer as for a lab that does not exist
        with pytest.raises(NotFound) as missing:
            shares.list_shares(db, who, "nosuchlab")
        assert missing.value.code == "lab_not_found"


@pytest.mark.parametrize(
    ("lab_id", "grantee", "mode", "error", "code"),
    [
        ("labstop1", "bob", "view", Conflict, "lab_not_running"),
        ("labteam1", "bob", "view", Conflict, "team_lab_not_shareable"),
        ("labrun1", "bob", "admin", Invalid, "invalid_mode"),
        ("labrun1", "bob", "", Invalid, "invalid_mode"),
        ("labrun1", "ada", "view", Invalid, "share_with_self"),
        ("labrun1", "nobody", "view", NotFound, "user_not_found"),
        ("labrun1", "team:nosuch", "view", NotFound, "team_not_found"),
        ("labrun1", "team:", "view", NotFound, "team_not_found"),
        ("labrun1", "../bob", "view", NotFound, "user_not_found"),
    ],
)
def test_refused_shares_change_nothing(world, lab_id, grantee, mode, error, code):
    with world() as db:
        ada = _who(db, "ada")
        with pytest.raises(error) as refused:
            shares.share(db, ada, lab_id, grantee, mode)
        assert refused.value.code == code
        db.rollback()
        assert shares.list_shares(db, ada, lab_id) == []
