"""Single sign-on in the audit log (issue 19): the callback is a GET, which the audit middleware does not
record, so the page records it: a sign-in with its provider and user, a refused one with why (and the user
when the provider's token named one); and two callbacks of one new person at once both sign in. Through the
real provider of tests/accounts/oidc_provider.py, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from datalabs.audit import chain
from datalabs.db.models import AuditRecord, OidcIdentity, User
from tests.accounts.test_oidc_login import (  # noqa: F401 (fixtures: the providers and the settings)
    _no_forgery,
    at_provider,
    browser,
    callback,
    op,
    op2,
    settings,
    sign_in,
    to_provider,
)

SIGN_IN = "GET /login/oidc/{provider}/callback"


def sign_ins(app) -> list[AuditRecord]:
    with app.state.sessions() as db:
        return list(
            db.scalars(select(AuditRecord).where(AuditRecord.what == SIGN_IN).order_by(AuditRecord.id))
        )


def test_a_sign_in_is_recorded_with_its_provider_and_user(browser, op, app):  # noqa: F811
    assert sign_ins(app) == []
    assert sign_in(browser, op).status_code == 303
    (rec,) = sign_ins(app)
    assert (rec.who, rec.outcome, rec.client) == ("ada", "303", "testclient")
    assert json.loads(rec.target) == {"provider": "op"}
    with app.state.sessions() as db:
        assert chain.verify(db) is None


def test_refused_sign_ins_are_recorded_with_why(browser, op, app, people):  # noqa: F811
    denied = browser.get("/login/oidc/op/callback", params={"error": "access_denied", "state": "x"})
    assert denied.status_code == 401
    people.user("ada")  # a local account: the provider's ada is refused, never linked to it
    browser.cookies.clear()
    assert sign_in(browser, op).status_code == 401
    unknown = browser.get("/login/oidc/nope/callback", params={"code": "c", "state": "s"})
    assert unknown.status_code == 401
    got = [(r.who, r.outcome, json.loads(r.target)["provider"], r.detail) for r in sign_ins(app)]
    assert got == [
        (None, "401", "op", {"reason": "oidc_refused"}),
        ("ada", "401", "op", {"reason": "oidc_name_taken"}),
        (None, "401", "nope", {"reason": "oidc_unknown_provider"}),
    ]


def test_two_callbacks_of_one_new_person_at_once_both_sign_in(app, op):  # noqa: F811
    with TestClient(app, follow_redirects=False) as first, TestClient(app, follow_redirects=False) as second:
        urls = [at_provider(to_provider(b, op), "bob", "bob-pass") for b in (first, second)]
        gate, answers = threading.Barrier(2), {}

        def back(name: str, b: TestClient, url: str) -> None:
            gate.wait()
            answers[name] = callback(b, url)

        threads = [threading.Thread(target=back, args=("first", first, urls[0]))]
        threads.append(threading.Thread(target=back, args=("second", second, urls[1])))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert {k: r.status_code for k, r in answers.items()} == {"first": 303, "second": 303}, {
            k: r.text[:300] for k, r in answers.items()
        }
        assert first.get("/api/v1/me").json()["name"] == second.get("/api/v1/me").json()["name"] == "bob"
    with app.state.sessions() as db:
        assert db.scalar(select(func.count()).select_from(User).where(User.name == "bob")) == 1
        assert db.scalar(select(func.count()).select_from(OidcIdentity)) == 1
    assert [(r.who, r.outcome) for r in sign_ins(app)] == [("bob", "303"), ("bob", "303")]
