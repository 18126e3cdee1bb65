"""Sharing a lab from the labs page (issue 19): the owner's Share page (add a user or a team in a mode, see
and revoke the shares, see who is connected), the "Shared with me" section and a guest's page; the hostile
cases (another user, a team member, an admin posting to the owner's form; unknown names; a stopped lab)
change nothing. Labs are rows made running in the database: no runtime is needed for these pages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.db.engine import transaction
from datalabs.db.models import Lab, LabShare
from datalabs.proxy.guests import Guest
from datalabs.proxy.routes import Route
from tests.share_support import add_datalab
from tests.web.conftest import csrf_from, login
from tests.web.labs_support import browser, text_of

SHARE = "/labs/ab12/share"


@pytest.fixture
def world(client, user):
    """bob (logged in on `user`) owns the running lab ab12 (and the stopped cd34); carol, cy (team astro),
    eve and the admin root exist."""
    with transaction(client.app.state.sessions) as db:
        for name in ("carol", "cy", "eve"):
            accounts.create_user(db, name, "correct horse battery")
        accounts.create_user(db, "root", "correct horse battery", role="admin")
        accounts.create_group(db, "astro")
        accounts.set_member(db, "astro", "cy")
        bob = accounts.get_user(db, "bob")
        add_datalab(db, "fake", "1.0")  # a lab that enforces view
        db.add(
            Lab(id="ab12", owner_id=bob.id, name="Notebook", datalab="fake", version="1.0", state="running")
        )
        db.add(
            Lab(id="cd34", owner_id=bob.id, name="Old one", datalab="fake", version="1.0", state="stopped")
        )
    return user


def as_user(client, name: str):
    other = browser(client)
    assert login(other, name).status_code == 303
    return other


def shares_of(client, lab_id: str = "ab12") -> dict[str, str]:
    with client.app.state.sessions() as db:
        return dict(
            db.execute(select(LabShare.grantee, LabShare.mode).where(LabShare.lab_id == lab_id)).all()
        )


def post(client, page: str, action: str, data: dict):
    return client.post(
        action, data={**data, "csrf_token": csrf_from(client.get(page).text)}, follow_redirects=False
    )


def test_the_owner_shares_from_the_card_sees_and_revokes(world, client):
    cards = world.get("/labs").text
    running = re.search(r'<li class="lab-card lab-card-running" data-lab="ab12".*?</li>', cards, re.S).group(
        0
    )
    assert f'href="{SHARE}"' in running and ">Share</a>" in running
    stopped = re.search(r'<li class="lab-card lab-card-stopped" data-lab="cd34".*?</li>', cards, re.S).group(
        0
    )
    assert "/share" not in stopped  # only a running lab is shared

    page = world.get(SHARE)
    assert page.status_code == 200 and "Not shared with anyone." in page.text
    assert (
        '<form method="post" action="/labs/ab12/shares"' in page.text
        and "No guest is connected." in page.text
    )

    r = post(world, SHARE, "/labs/ab12/shares", {"kind": "user", "name": " carol ", "mode": "view"})
    assert r.status_code == 303 and r.headers["location"] == SHARE
    r = post(world, SHARE, "/labs/ab12/shares", {"kind": "team", "name": "astro", "mode": "collaborate"})
    assert r.status_code == 303
    assert shares_of(client) == {"carol": "view", "team:astro": "collaborate"}
    page = world.get(SHARE).text
    assert "Shared with team &#39;astro&#39; (collaborate)." in page  # the flash of the last one
    rows = dict(re.findall(r'<tr data-grantee="([^"]+)">\s*<th scope="row">([^<]+)</th>', page))
    assert rows == {"carol": "carol", "team:astro": "team astro"}

    r = post(world, SHARE, "/labs/ab12/shares", {"kind": "user", "name": "carol", "mode": "collaborate"})
    assert r.status_code == 303 and shares_of(client)["carol"] == "collaborate"  # again: the mode changes

    r = post(world, SHARE, "/labs/ab12/shares/revoke", {"grantee": "team:astro"})
    assert r.status_code == 303 and shares_of(client) == {"carol": "collaborate"}
    assert "No longer shared with team astro" in text_of(world.get(SHARE).text)


def test_errors_are_shown_on_the_page_and_nothing_is_stored(world, client):
    for data, status, words in (
        ({"kind": "user", "name": "nosuch", "mode": "view"}, 404, "No user 'nosuch'."),
        ({"kind": "team", "name": "nosuch", "mode": "view"}, 404, "No team 'nosuch'."),
        ({"kind": "user", "name": "bob", "mode": "view"}, 422, "A lab is not shared with its own owner."),
        ({"kind": "user", "name": "carol", "mode": "owner"}, 422, "Mode must be one of view, collaborate."),
        (
            {"kind": "robot", "name": "carol", "mode": "view"},
            422,
            "Choose whether to share with a user or a team.",
        ),
        ({"kind": "user", "name": "  ", "mode": "view"}, 422, "Name the user to share the lab with."),
        ({"kind": "user", "name": "a\x00b", "mode": "view"}, 404, "No user 'a"),
    ):
        r = post(world, SHARE, "/labs/ab12/shares", data)
        assert r.status_code == status, (data, r.text)
        assert '<p class="form-error" role="alert" id="add-error">' in r.text and words in text_of(r.text), (
            data
        )
        assert '<form method="post" action="/labs/ab12/shares"' in r.text  # the form again, to correct
    assert shares_of(client) == {}

    stopped = post(
        world, "/labs/cd34/share", "/labs/cd34/shares", {"kind": "user", "name": "carol", "mode": "view"}
    )
    assert stopped.status_code == 409 and "Only a running lab can be shared." in text_of(stopped.text)
    assert "this one is stopped" in world.get("/labs/cd34/share").text and shares_of(client, "cd34") == {}

    r = post(world, SHARE, "/labs/ab12/shares/revoke", {"grantee": "carol"})  # no such share
    assert r.status_code == 404 and "is not shared with &#39;carol&#39;" in r.text

    r = world.post("/labs/ab12/shares", data={"kind": "user", "name": "carol", "mode": "view"})
    assert r.status_code == 403 and shares_of(client) == {}  # no CSRF token


def test_a_view_share_of_a_lab_that_cannot_enforce_it_is_refused_with_the_reason(world, client):
    with transaction(client.app.state.sessions) as db:
        add_datalab(db, "plainweb", "1", {"kind": "web", "command": ["fake-lab"]})  # no authorizer
        bob = accounts.get_user(db, "bob")
        db.add(Lab(id="ef56", owner_id=bob.id, name="App", datalab="plainweb", version="1", state="running"))
    page, action = "/labs/ef56/share", "/labs/ef56/shares"
    reason = (
        "The datalab 'plainweb' cannot keep a viewer from changing things, so it is not shared view only: "
        "share it to collaborate instead."
    )
    r = post(world, page, action, {"kind": "user", "name": "carol", "mode": "view"})
    assert r.status_code == 409 and '<p class="form-error" role="alert" id="add-error">' in r.text
    assert reason in text_of(r.text) and shares_of(client, "ef56") == {}
    assert (
        post(world, page, action, {"kind": "user", "name": "carol", "mode": "collaborate"}).status_code == 303
    )
    r = post(world, page, action, {"kind": "user", "name": "carol", "mode": "view"})  # a mode change
    assert r.status_code == 409 and reason in text_of(r.text)
    assert shares_of(client, "ef56") == {"carol": "collaborate"}


@pytest.mark.parametrize(
    "who", ["eve", "cy", "root"]
)  # another user, a member of a team it is shared with, an admin
def test_nobody_but_the_owner_sees_or_changes_the_shares(world, client, who):
    post(world, SHARE, "/labs/ab12/shares", {"kind": "team", "name": "astro", "mode": "view"})
    other = as_user(client, who)
    assert other.get(SHARE).status_code == 404
    token = csrf_from(other.get("/labs").text)
    for action, data in (
        ("/labs/ab12/shares", {"kind": "user", "name": who, "mode": "collaborate"}),
        ("/labs/ab12/shares", {"kind": "user", "name": "eve", "mode": "view"}),
        ("/labs/ab12/shares/revoke", {"grantee": "team:astro"}),
    ):
        r = other.post(action, data={**data, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 404 and "ab12" in r.text, (action, r.text)
    assert shares_of(client) == {"team:astro": "view"}


def test_shared_with_me_and_the_guests_page_say_whose_lab_it_is(world, client):
    post(world, SHARE, "/labs/ab12/shares", {"kind": "team", "name": "astro", "mode": "view"})
    cy = as_user(client, "cy")
    labs = cy.get("/labs").text
    section = labs.split('id="h-shared"', 1)[1]
    card = re.search(r'<li class="lab-card lab-card-shared" data-lab="ab12".*?</li>', section, re.S).group(0)
    assert 'data-mode="view"' in card and "bob</strong>'s lab" in card and "view only" in card
    assert 'href="/datalabs/ab12/"' in card and ">Open</a>" in card
    assert "cd34" not in labs  # bob's stopped lab is not shared (and not cy's)

    guest = cy.get("/shared/ab12")
    assert guest.status_code == 200
    words = text_of(guest.text)
    assert "bob's lab, shared with you: view (read only)." in words and "Open bob's lab" in words
    for who in ("eve", "bob"):  # not shared with eve; bob is its owner, not a guest
        assert as_user(client, who).get("/shared/ab12").status_code == 404
        assert 'id="h-shared"' not in as_user(client, who).get("/labs").text

    post(world, SHARE, "/labs/ab12/shares/revoke", {"grantee": "team:astro"})
    assert cy.get("/shared/ab12").status_code == 404 and 'id="h-shared"' not in cy.get("/labs").text


def test_the_owner_sees_who_is_connected_now(world, client):
    post(world, SHARE, "/labs/ab12/shares", {"kind": "user", "name": "carol", "mode": "collaborate"})
    with client.app.state.sessions() as db:
        carol = Principal(user=accounts.get_user(db, "carol"), groups=frozenset())
        db.expunge(carol.user)
    ended: list[str] = []
    guest = Guest("carol", "collaborate", Route("ab12", "bob", socket="/nonexistent"), carol, ended.append)
    guests = client.app.state.proxy.guests
    client.portal.call(guests.add, guest)  # as the proxy does when a guest's WebSocket opens
    try:
        page = world.get(SHARE).text
        row = re.search(r'<tr data-guest="carol">.*?</tr>', page, re.S).group(0)
        assert "collaborate" in row and "No guest is connected." not in page
        assert '<tr data-guest="' not in as_user(client, "eve").get(SHARE).text  # 404 page, nobody listed
    finally:
        client.portal.call(guests.discard, guest)
    assert "No guest is connected." in world.get(SHARE).text
