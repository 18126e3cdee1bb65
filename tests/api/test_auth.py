from tests.conftest import PASSWORD


def test_login_sets_a_safe_cookie_and_me_works(client, people):
    people.user("ada")
    r = client.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    me = client.get("/api/v1/me").json()
    assert me["name"] == "ada" and me["via"] == "session" and me["csrf_token"]
    assert "password" not in str(me).lower()


def test_wrong_password_is_401_without_saying_whether_the_user_exists(client, people):
    people.user("ada")
    wrong = client.post("/api/v1/login", json={"username": "ada", "password": "not-it-at-all"})
    unknown = client.post("/api/v1/login", json={"username": "ghost", "password": "not-it-at-all"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "bad_credentials"


def test_repeated_failures_throttle_with_retry_after(client, people, settings):
    people.user("ada")
    for _ in range(settings.auth.throttle_failures):
        assert (
            client.post("/api/v1/login", json={"username": "ada", "password": "bad-guess"}).status_code == 401
        )
    r = client.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["error"]["code"] == "login_throttled"


def test_logout_ends_the_session(client, people):
    people.user("ada")
    c = people.login("ada")
    assert c.post("/api/v1/logout", json={}).status_code == 204
    assert c.get("/api/v1/me").status_code == 401


def test_cookie_authenticated_change_without_the_csrf_header_is_refused(people):
    people.user("ada")
    c = people.login("ada")
    csrf = c.headers.pop("X-CSRF-Token")
    forged = c.post("/api/v1/tokens", data={"name": "x"})  # what a cross-site form could send
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf"
    # A JSON body proves nothing (a same-site page may send one): the header is what counts.
    assert c.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    assert c.delete("/api/v1/tokens/abc").status_code == 403  # every method that changes things
    assert c.post("/api/v1/logout", headers={"X-CSRF-Token": csrf}).status_code == 204


def test_bad_login_bodies_are_422_json(client):
    for body in ({}, {"username": "x"}, {"username": "", "password": ""}, {"username": 1, "password": []}):
        r = client.post("/api/v1/login", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"
    r = client.post("/api/v1/login", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_malformed_authorization_header(client):
    r = client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_authorization"
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer dl_not-a-real-token"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
