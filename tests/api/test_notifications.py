"""GET /api/v1/notifications and POST /api/v1/notifications/read: paged, with the unread count, and
private: another user's notice ids, named on purpose, neither show nor change anything."""

from __future__ import annotations

from datalabs.db.engine import transaction
from datalabs.notifications import service as notifications


def _notify(app, name: str, *texts: str) -> list[int]:
    from datalabs.accounts.service import get_user

    with transaction(app.state.sessions) as db:
        user = get_user(db, name)
        made = [notifications.add(db, user.id, text, "/runs/abc") for text in texts]
        db.flush()
        return [n.id for n in made]


def test_paged_newest_first_with_the_unread_count(people, app):
    people.user("ada")
    _notify(app, "ada", *(f"note {i}" for i in range(7)))
    ada = people.login("ada")
    first = ada.get("/api/v1/notifications", params={"limit": 3}).json()
    assert (first["total"], first["unread"]) == (7, 7)
    assert [n["text"] for n in first["items"]] == ["note 6", "note 5", "note 4"]
    rest = ada.get("/api/v1/notifications", params={"limit": 3, "offset": 6}).json()
    assert [n["text"] for n in rest["items"]] == ["note 0"]
    # The app store's older call still answers, with the same notices.
    assert [n["text"] for n in ada.get("/api/v1/notices").json()][:2] == ["note 6", "note 5"]


def test_mark_given_ids_then_all(people, app):
    people.user("ada")
    ids = _notify(app, "ada", "a", "b", "c")
    ada = people.login("ada")
    r = ada.post("/api/v1/notifications/read", json={"ids": ids[:1]})
    assert r.status_code == 200 and r.json() == {"marked": 1, "unread": 2}
    items = ada.get("/api/v1/notifications").json()["items"]
    assert [n["read_at"] is not None for n in items] == [False, False, True]
    assert ada.post("/api/v1/notifications/read", json={}).json() == {"marked": 2, "unread": 0}
    assert ada.post("/api/v1/notifications/read", json={"ids": None}).json() == {"marked": 0, "unread": 0}


def test_another_users_notices_can_be_neither_seen_nor_marked(people, app):
    people.user("ada")
    people.user("bob")
    people.user("root", role="admin")
    adas = _notify(app, "ada", "ada's run ended")
    bobs = _notify(app, "bob", "bob's run ended")
    for name in ("bob", "root"):  # another user, and an administrator: the same
        other = people.login(name)
        listed = other.get("/api/v1/notifications").json()
        assert adas[0] not in [n["id"] for n in listed["items"]]
        assert "ada's run ended" not in str(listed)
        r = other.post("/api/v1/notifications/read", json={"ids": adas})
        assert r.status_code == 200 and r.json()["marked"] == 0
        assert other.get(f"/notifications/{adas[0]}", follow_redirects=False).status_code == 404
    ada = people.login("ada")
    assert ada.get("/api/v1/notifications").json()["unread"] == 1
    # Mixed: only ada's own id counts.
    assert ada.post("/api/v1/notifications/read", json={"ids": adas + bobs}).json() == {
        "marked": 1,
        "unread": 0,
    }
    assert people.login("bob").get("/api/v1/notifications").json()["unread"] == 1


def test_bad_input_gets_a_clear_error(people, app):
    people.user("ada")
    ada = people.login("ada")
    for body in (
        {"ids": ["one"]},
        {"ids": "all"},
        {"ids": list(range(1, 1002))},
        {"ids": [2**40]},
        {"ids": [0]},
    ):
        r = ada.post("/api/v1/notifications/read", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"], (body, r.text)
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"offset": 2**40}, {"limit": "x"}):
        r = ada.get("/api/v1/notifications", params=params)
        assert r.status_code == 422 and r.json()["error"]["message"], (params, r.text)


def test_scopes_read_may_list_but_not_mark(people, app):
    people.user("ada")
    _notify(app, "ada", "x")
    reader = people.token("ada", ["notifications:read"])
    writer = people.token("ada", ["notifications:write"])
    client = people.client
    assert client.get("/api/v1/notifications", headers=reader).status_code == 200
    r = client.post("/api/v1/notifications/read", json={}, headers=reader)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert client.post("/api/v1/notifications/read", json={}, headers=writer).json()["marked"] == 1


def test_marking_read_with_the_session_cookie_needs_the_csrf_header(people, app):
    people.user("ada")
    _notify(app, "ada", "x")
    ada = people.login("ada")
    del ada.headers["X-CSRF-Token"]
    r = ada.post("/api/v1/notifications/read", json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    assert ada.get("/api/v1/notifications").json()["unread"] == 1
