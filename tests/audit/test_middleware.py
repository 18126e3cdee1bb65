"""The audit middleware: one record per state-changing request, who/what/outcome right, never failing it."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from datalabs.audit import chain
from datalabs.db.models import AuditRecord


def _records(app) -> list[AuditRecord]:
    with app.state.sessions() as db:
        return list(db.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars())


def _one_more(app, before: int) -> AuditRecord:
    records = _records(app)
    assert len(records) == before + 1, [(r.what, r.outcome) for r in records[before:]]
    return records[-1]


def test_login_and_failed_login_name_the_user_tried(people):
    app, client = people.app, people.client
    people.user("ann")
    n = len(_records(app))
    client.post("/api/v1/login", json={"username": "ann", "password": "wrong-password"})
    rec = _one_more(app, n)
    assert (rec.who, rec.what, rec.outcome) == ("ann", "POST /api/v1/login", "401")
    assert rec.client == "testclient" and "wrong-password" not in json.dumps(rec.detail)
    people.login("ann")
    rec = _one_more(app, n + 1)
    assert (rec.who, rec.what, rec.outcome) == ("ann", "POST /api/v1/login", "200")


def test_form_login_names_the_user_tried(people):
    app, client = people.app, people.client
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    n = len(_records(app))
    r = client.post(
        "/login", data={"username": " nobody ", "password": "x", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 401
    rec = _one_more(app, n)
    assert (rec.who, rec.what, rec.outcome) == ("nobody", "POST /login", "401")


def test_principal_template_target_and_refusals(people):
    app, client = people.app, people.client
    people.user("ann")
    people.user("root", role="admin")
    ann = people.login("ann")
    n = len(_records(app))
    assert client.post("/api/v1/tokens", json={"name": "t"}).status_code == 401  # anonymous
    rec = _one_more(app, n)
    assert (rec.who, rec.what, rec.outcome) == (None, "POST /api/v1/tokens", "401")
    r = ann.delete("/api/v1/users/root")  # an ordinary user at an admin route
    assert r.status_code == 403
    rec = _one_more(app, n + 1)
    assert (rec.who, rec.what, rec.outcome) == ("ann", "DELETE /api/v1/users/{name}", "403")
    assert json.loads(rec.target) == {"name": "root"}
    assert ann.get("/api/v1/me").status_code == 200  # reads are not recorded
    assert len(_records(app)) == n + 2


def test_unrouted_write_is_recorded_with_its_path_cut_to_fit(people):
    app, client = people.app, people.client
    n = len(_records(app))
    assert client.post("/nowhere/" + "a" * 2000).status_code in (404, 405)
    rec = _one_more(app, n)
    assert rec.what == "POST (no route)" and rec.target.startswith("/nowhere/") and len(rec.target) == 500


def test_a_failed_audit_write_never_fails_the_request(people, monkeypatch, caplog):
    app, client = people.app, people.client
    people.user("ann")

    def broken(*a, **k):
        raise RuntimeError("audit database down")

    monkeypatch.setattr(chain, "append", broken)
    with caplog.at_level(logging.ERROR, logger="datalabs.audit"):
        r = client.post("/api/v1/login", json={"username": "ann", "password": "correct horse"})
    assert r.status_code in (200, 401)
    assert "AUDIT RECORD NOT WRITTEN" in caplog.text
    monkeypatch.undo()
    with app.state.sessions() as db:
        assert chain.verify(db) is None


def test_a_route_that_committed_its_session_is_recorded_with_the_users_name(tmp_path):
    """A route's commit expires the user row it attached to its session, which is closed when the record
    is written: the middleware reads the name again (reading `.name` raised DetachedInstanceError into the
    response: tests/web/test_labs_pages.py's restarts answered 500)."""
    from datalabs.accounts.principal import Principal
    from datalabs.audit.middleware import fields
    from datalabs.db.engine import open_database
    from datalabs.db.models import User

    engine, sessions = open_database(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        with sessions() as db:
            db.add(User(name="ada", password_hash="x"))
            db.commit()
            user = db.query(User).one()
            db.expire(user)  # as a commit of the route does (expire_on_commit), then detached at close
        app = type("App", (), {"state": type("State", (), {"sessions": sessions})()})()
        scope = {
            "method": "POST",
            "state": {"principal": Principal(user=user, groups=frozenset())},
            "app": app,
        }
        assert fields(scope, 303)["who"] == "ada"
    finally:
        engine.dispose()
