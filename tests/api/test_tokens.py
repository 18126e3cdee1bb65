from datetime import timedelta

from datalabs.db.engine import transaction
from datalabs.db.models import ApiToken
from datalabs.db.types import utcnow


def test_create_list_use_and_revoke(people):
    people.user("ada")
    c = people.login("ada")
    created = c.post(
        "/api/v1/tokens", json={"name": "laptop", "scopes": ["catalogue:read"], "expires_in": 3600}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("dl_") and body["scopes"] == ["catalogue:read"] and body["expires_at"]
    listed = c.get("/api/v1/tokens").json()
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert people.client.get("/api/v1/datalabs", headers=bearer).status_code == 200
    assert c.delete(f"/api/v1/tokens/{body['id']}").status_code == 204
    assert people.client.get("/api/v1/datalabs", headers=bearer).status_code == 401
    assert c.get("/api/v1/tokens").json() == []
    assert c.delete(f"/api/v1/tokens/{body['id']}").status_code == 404


def test_scopes_are_enforced(people):
    people.user("ada")
    narrow = people.token("ada", ["labs:read"])
    r = people.client.get("/api/v1/datalabs", headers=narrow)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    # a narrow token can neither list nor mint tokens (no escalation)
    assert people.client.get("/api/v1/tokens", headers=narrow).status_code == 403
    assert people.client.post("/api/v1/tokens", headers=narrow, json={"name": "wider"}).status_code == 403
    assert people.client.get("/api/v1/me", headers=narrow).status_code == 200


def test_admin_token_without_admin_scope_cannot_administer(people):
    people.user("root", role="admin")
    r = people.client.get("/api/v1/users", headers=people.token("root", ["catalogue:read"]))
    assert r.status_code == 403
    assert people.client.get("/api/v1/users", headers=people.token("root", ["admin"])).status_code == 200


def test_expired_token_is_rejected(app, people):
    people.user("ada")
    headers = people.token("ada", None, 60)
    with transaction(app.state.sessions) as db:
        for token in db.query(ApiToken):
            token.expires_at = utcnow() - timedelta(seconds=1)
    r = people.client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


def test_other_users_token_cannot_be_revoked(people):
    people.user("ada")
    people.user("bob")
    ada = people.login("ada")
    token_id = ada.post("/api/v1/tokens", json={"name": "mine"}).json()["id"]
    bob = people.login("bob")
    assert bob.delete(f"/api/v1/tokens/{token_id}").status_code == 404
    assert [t["id"] for t in ada.get("/api/v1/tokens").json()] == [token_id]


def test_bad_token_requests(people):
    people.user("ada")
    c = people.login("ada")
    for body in (
        {"name": ""},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "expires_in": 1},
        {"name": "x", "expires_in": 10**12},
        {"name": "x", "unknown": 1},
    ):
        r = c.post("/api/v1/tokens", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["message"]
