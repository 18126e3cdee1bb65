"""Lab shares through the API (issue 19), fake runtime: the owner shares, changes, lists and revokes; bad
grantees, modes and labs are refused with a clear error and nothing stored. Who may call which route is in
tests/api/test_authorization.py; what a guest may then do through the proxy, in tests/proxy/test_shares.py."""

from __future__ import annotations

import pytest

from datalabs.config import Settings
from tests.api.test_labs import FAKE, wait_state
from tests.catalogue.test_loader import write
from tests.share_support import VIEWABLE_YAML


@pytest.fixture
def settings(tmp_path, db_url):
    root = tmp_path / "defs"
    write(root, "fake", FAKE.format(command=VIEWABLE_YAML))  # a lab that enforces view
    # A web lab that does not: a view share of it is refused.
    write(root, "plain", FAKE.format(command="fake-lab").replace("Fake Lab", "Plain Lab"))
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [root], "builtin": False},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
    )


@pytest.fixture
def world(people):
    people.user("ada")
    people.user("bob")
    people.user("cy", groups=("astro",))
    ada = people.login("ada")
    lab = ada.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"]
    assert wait_state(ada, lab)["state"] == "running"
    return ada, lab


def test_owner_shares_changes_lists_and_revokes(world):
    ada, lab = world
    r = ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "view"})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("lab_id", "grantee", "mode", "created_by")} == {
        "lab_id": lab,
        "grantee": "bob",
        "mode": "view",
        "created_by": "ada",
    }
    assert ada.put(f"/api/v1/labs/{lab}/shares/team:astro", json={"mode": "collaborate"}).status_code == 200
    assert (
        ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "collaborate"}).json()["mode"]
        == "collaborate"
    )
    listed = [(s["grantee"], s["mode"]) for s in ada.get(f"/api/v1/labs/{lab}/shares").json()]
    assert listed == [("bob", "collaborate"), ("team:astro", "collaborate")]
    assert ada.delete(f"/api/v1/labs/{lab}/shares/bob").status_code == 204
    assert [s["grantee"] for s in ada.get(f"/api/v1/labs/{lab}/shares").json()] == ["team:astro"]
    r = ada.delete(f"/api/v1/labs/{lab}/shares/bob")  # again: there is none
    assert (r.status_code, r.json()["error"]["code"]) == (404, "share_not_found")


@pytest.mark.parametrize(
    ("grantee", "body", "status", "code"),
    [
        ("bob", {"mode": "edit"}, 422, None),  # not a mode
        ("bob", {"mode": "view", "owner": "bob"}, 422, None),  # unknown field
        ("bob", {}, 422, None),  # no mode
        ("bob", None, 422, None),  # no body
        ("nobody", {"mode": "view"}, 404, "user_not_found"),
        ("team:nope", {"mode": "view"}, 404, "team_not_found"),
        ("team:", {"mode": "view"}, 404, "team_not_found"),
        ("ada", {"mode": "view"}, 422, "share_with_self"),
        ("x" * 71, {"mode": "view"}, 422, None),  # longer than any grantee
        ("..%2Fbob", {"mode": "view"}, 404, None),  # a slash never reaches the service
        ("bob%00", {"mode": "view"}, 404, "user_not_found"),
    ],
)
def test_bad_shares_are_refused_and_nothing_is_stored(world, grantee, body, status, code):
    ada, lab = world
    r = ada.put(f"/api/v1/labs/{lab}/shares/{grantee}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code or code is None and r.json()["error"]["code"]
    assert ada.get(f"/api/v1/labs/{lab}/shares").json() == []


def test_view_is_refused_for_a_lab_that_cannot_enforce_it(people):
    people.user("ada")
    people.user("bob")
    ada = people.login("ada")
    lab = ada.post("/api/v1/labs", json={"datalab": "plain"}).json()["id"]
    assert wait_state(ada, lab)["state"] == "running"
    r = ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "view"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "view_not_enforced"), r.text
    assert "'plain'" in r.json()["error"]["message"] and "collaborate instead" in r.json()["error"]["message"]
    assert ada.get(f"/api/v1/labs/{lab}/shares").json() == []
    assert ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "collaborate"}).status_code == 200
    r = ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "view"})  # a mode change: refused too
    assert (r.status_code, r.json()["error"]["code"]) == (409, "view_not_enforced")
    assert [(s["grantee"], s["mode"]) for s in ada.get(f"/api/v1/labs/{lab}/shares").json()] == [
        ("bob", "collaborate")
    ]


def test_a_nul_byte_is_not_found_not_an_error(world):
    ada, lab = world  # PostgreSQL refuses a NUL in a query: it must never reach one
    for method, path in [
        ("PUT", f"/api/v1/labs/{lab}%00/shares/bob"),
        ("GET", f"/api/v1/labs/{lab}%00/shares"),
        ("DELETE", f"/api/v1/labs/{lab}/shares/bob%00"),
        ("PUT", f"/api/v1/labs/{lab}/shares/team:astro%00"),
    ]:
        r = ada.request(method, path, json={"mode": "view"} if method == "PUT" else None)
        assert r.status_code == 404 and r.json()["error"]["code"].endswith("_not_found"), (path, r.text)


def test_only_a_running_lab_of_ones_own_is_shared(world, people):
    ada, lab = world
    r = ada.put("/api/v1/labs/nosuchlab/shares/bob", json={"mode": "view"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "lab_not_found")
    bob = people.login("bob")  # another's lab: the same answer as a lab that does not exist
    r = bob.put(f"/api/v1/labs/{lab}/shares/cy", json={"mode": "view"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "lab_not_found")
    assert ada.post(f"/api/v1/labs/{lab}/stop", json={}).json()["state"] == "stopped"
    r = ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "view"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "lab_not_running")
    assert ada.get(f"/api/v1/labs/{lab}/shares").json() == []


def test_shared_with_me_lists_others_running_labs_with_the_mode(world, people):
    ada, lab = world
    bob, cy = people.login("bob"), people.login("cy")
    assert bob.get("/api/v1/labs?shared=true").json() == []
    ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "view"})
    ada.put(f"/api/v1/labs/{lab}/shares/team:astro", json={"mode": "collaborate"})
    listed = bob.get("/api/v1/labs?shared=true").json()
    assert [(x["id"], x["owner"], x["shared"]) for x in listed] == [(lab, "ada", "view")]
    assert [(x["id"], x["shared"]) for x in cy.get("/api/v1/labs?shared=true").json()] == [
        (lab, "collaborate")
    ]
    assert bob.get("/api/v1/labs").json() == []  # bob's own labs: none; the shared one is not his
    assert [x["shared"] for x in ada.get("/api/v1/labs").json()] == [None]
    assert ada.get("/api/v1/labs?shared=true").json() == []  # one's own shares are not "shared with me"
    ada.post(f"/api/v1/labs/{lab}/stop", json={})
    assert bob.get("/api/v1/labs?shared=true").json() == []  # only running labs


def test_the_owner_sees_who_is_connected_and_nobody_else_does(world, people, app):
    from datalabs.accounts.principal import Principal
    from datalabs.accounts.service import get_user
    from datalabs.proxy.guests import Guest
    from datalabs.proxy.routes import Route

    ada, lab = world
    ada.put(f"/api/v1/labs/{lab}/shares/bob", json={"mode": "view"})
    assert ada.get(f"/api/v1/labs/{lab}/guests").json() == []
    # A guest's open WebSocket as the proxy registers it (the real thing: tests/proxy/test_shares.py).
    with app.state.sessions() as db:
        bob = Principal(user=get_user(db, "bob"), groups=frozenset())
    guest = Guest("bob", "view", Route(lab, "ada", socket="/s"), bob, end=lambda reason: None)

    async def connect():
        app.state.proxy.guests.add(guest)

    people.client.portal.call(connect)
    seen = ada.get(f"/api/v1/labs/{lab}/guests").json()
    assert [(g["user"], g["mode"]) for g in seen] == [("bob", "view")] and seen[0]["since"]
    for other in ("bob", "cy"):
        r = people.login(other).get(f"/api/v1/labs/{lab}/guests")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "lab_not_found")
    app.state.proxy.guests.discard(guest)
    assert ada.get(f"/api/v1/labs/{lab}/guests").json() == []
