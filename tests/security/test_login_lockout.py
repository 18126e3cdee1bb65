"""Finding 9: anybody could lock anybody out. Five wrong passwords for ada from an anonymous client
blocked ada's correct login for 15 minutes. Now throttling slows the client that fails (429 with a
Retry-After that grows), never the account: ada logs in from her own machine at once, through the API
and the login page, however many wrong passwords strangers sent."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from datalabs.db.models import User
from tests.conftest import PASSWORD

ATTACKER = ("203.0.113.66", 40000)
ADA_HOME = ("198.51.100.7", 50000)
WRONG = {"username": "ada", "password": "not-her-password"}
RIGHT = {"username": "ada", "password": PASSWORD}


def _client(client: TestClient, address: tuple[str, int]) -> TestClient:
    c = TestClient(client.app, client=address)
    c.portal = client.portal  # the running app's loop and lifespan
    return c


def test_five_wrong_passwords_from_a_stranger_do_not_lock_ada_out(client, people):
    people.user("ada")
    attacker, ada = _client(client, ATTACKER), _client(client, ADA_HOME)
    for _ in range(5):
        assert attacker.post("/api/v1/login", json=WRONG).status_code == 401
    r = ada.post("/api/v1/login", json=RIGHT)
    assert r.status_code == 200, r.text  # at once: no wait for ada
    assert ada.get("/api/v1/me").json()["name"] == "ada"


def test_the_attacking_client_waits_longer_after_each_failure(client, people):
    people.user("ada")
    attacker = _client(client, ATTACKER)
    for _ in range(5):
        assert attacker.post("/api/v1/login", json=WRONG).status_code == 401
    waits = []
    for _ in range(3):
        r = attacker.post("/api/v1/login", json=WRONG)
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "login_throttled"
        waits.append(int(r.headers["retry-after"]))
        assert waits[-1] <= 8, waits  # progressive: a short wait first, not a lock
        # Even the right password is not checked while the client must wait (no guessing oracle).
        assert attacker.post("/api/v1/login", json=RIGHT).status_code == 429
        time.sleep(waits[-1] + 0.05)
        assert attacker.post("/api/v1/login", json=WRONG).status_code == 401  # one more guess, then wait
    assert waits == sorted(waits) and waits[0] < waits[-1], waits


def test_fifty_wrong_passwords_from_one_client_and_from_fifty_leave_ada_alone(client, people):
    people.user("ada")
    attacker = _client(client, ATTACKER)
    answers = [attacker.post("/api/v1/login", json=WRONG).status_code for _ in range(50)]
    assert answers[:5] == [401] * 5 and set(answers[5:]) == {429}
    for i in range(50):  # fifty strangers, one wrong guess each: all of them really checked
        stranger = _client(client, (f"192.0.2.{i + 1}", 40000))
        assert stranger.post("/api/v1/login", json=WRONG).status_code == 401
    ada = _client(client, ADA_HOME)
    assert ada.post("/api/v1/login", json=RIGHT).status_code == 200
    # The login page, from yet another address: no lock there either.
    page = _client(client, ("198.51.100.8", 50000))
    form = page.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = page.post(
        "/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/catalogue"
    # Nothing a stranger can set on her account: it is active and untouched.
    with client.app.state.sessions() as db:
        user = db.scalar(select(User).where(User.name == "ada"))
        assert user.active


def test_a_successful_login_does_not_reset_the_clients_count_for_other_names(client, people):
    """An attacker owning one account cannot clear its client's throttle by logging into it."""
    people.user("ada")
    people.user("mallory")
    attacker = _client(client, ATTACKER)
    for i in range(20):  # many names: the per-client counter (4x the per-name allowance)
        r = attacker.post("/api/v1/login", json={"username": f"user{i}", "password": "guess"})
        assert r.status_code == 401
    assert attacker.post("/api/v1/login", json={"username": "ada", "password": "guess"}).status_code == 429
    assert (
        attacker.post("/api/v1/login", json={"username": "mallory", "password": PASSWORD}).status_code == 429
    )
