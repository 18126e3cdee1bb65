"""Forged port reports (issue 16: "a forged callback (wrong token, or a host field) is refused").

A Slurm lab's job on an endpoint-"port" cluster reports `{"port": N}` to POST /api/v1/labs/{id}/callback
with its start's token (runtimes/slurm_port.py). Here the job is played by an HTTP client holding the
token that the platform's real registry expects, as SlurmRuntime.start registers it; everyone else tries
what an attacker on the cluster's network, another lab's job or a user of the platform could send.
After every refusal the genuine report must still be taken: a refused forgery spends nothing."""

from __future__ import annotations

import secrets

import pytest

from datalabs.runtimes.slurm_port import CALLBACKS, new_token

JOB = "4242"


@pytest.fixture
def lab():
    """A lab whose start waits for its job's port: (lab id, the job's token)."""
    lab_id = secrets.token_hex(8)
    token, digest = new_token()
    CALLBACKS.expect(lab_id, digest, JOB)
    yield lab_id, token
    CALLBACKS.discard(lab_id, digest)


def report(client, lab_id: str, token: str | bytes | None, body=None, **kw):
    headers = {}
    if isinstance(token, bytes):  # what no str header can carry: raw latin-1 bytes
        headers = {"Authorization": b"Bearer " + token}
    elif token is not None:
        headers = {"Authorization": f"Bearer {token}"}
    body = {"port": 40000} if body is None else body
    return client.post(f"/api/v1/labs/{lab_id}/callback", json=body, headers=headers, **kw)


def taken(lab_id: str, token: str) -> int | None:
    from datalabs.runtimes.slurm_port import digest

    return CALLBACKS.port(lab_id, digest(token), JOB)


def test_the_jobs_own_token_and_port_are_taken_once(client, lab):
    lab_id, token = lab
    r = report(client, lab_id, token, {"port": 40000})
    assert r.status_code == 204, r.text
    assert taken(lab_id, token) == 40000
    again = report(client, lab_id, token, {"port": 40001})  # a replay, or a second job with the token
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert taken(lab_id, token) == 40000


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(lambda lab_id, token: (lab_id, None), id="no token"),
        pytest.param(lambda lab_id, token: (lab_id, ""), id="empty token"),
        pytest.param(lambda lab_id, token: (lab_id, token[:-1]), id="token cut short"),
        pytest.param(lambda lab_id, token: (lab_id, token + "x"), id="token made longer"),
        pytest.param(lambda lab_id, token: (lab_id, new_token()[0]), id="wrong token"),
        pytest.param(lambda lab_id, token: (secrets.token_hex(8), token), id="token sent for another lab"),
        pytest.param(lambda lab_id, token: (lab_id, b"\xe9" * 43), id="non-ascii token"),
    ],
)
def test_a_report_without_this_labs_token_is_refused(client, lab, forged):
    lab_id, token = lab
    target, sent = forged(lab_id, token)
    r = report(client, target, sent)
    assert r.status_code in (401, 403), r.text
    assert r.json()["error"]["code"] in ("unauthorized", "forbidden")
    assert taken(lab_id, token) is None
    assert report(client, lab_id, token).status_code == 204  # the genuine report still works


def test_another_labs_job_cannot_report_for_this_lab(client, lab):
    lab_id, token = lab
    other_id, other_token = secrets.token_hex(8), None
    other_token, other_digest = new_token()
    CALLBACKS.expect(other_id, other_digest, "4243")
    try:
        r = report(client, lab_id, other_token)
        assert r.status_code == 403, r.text
        assert taken(lab_id, token) is None
    finally:
        CALLBACKS.discard(other_id, other_digest)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"port": 40000, "host": "10.6.6.6"}, id="host field"),
        pytest.param({"port": 40000, "address": "evil.example:443"}, id="another field"),
        pytest.param({"host": "10.6.6.6:40000"}, id="host instead of port"),
        pytest.param({"port": 80}, id="privileged port"),
        pytest.param({"port": 1023}, id="below 1024"),
        pytest.param({"port": 65536}, id="above 65535"),
        pytest.param({"port": -1}, id="negative"),
        pytest.param({"port": "40000"}, id="port as a string"),
        pytest.param({"port": 40000.5}, id="port as a float"),
        pytest.param({"port": True}, id="port as a boolean"),
        pytest.param({"port": None}, id="null port"),
        pytest.param([40000], id="a list"),
        pytest.param({}, id="empty"),
    ],
)
def test_anything_but_a_plain_port_is_refused(client, lab, body):
    lab_id, token = lab
    r = report(client, lab_id, token, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"
    assert taken(lab_id, token) is None
    assert report(client, lab_id, token, {"port": 40000}).status_code == 204


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("forged", 403)])
def test_without_the_token_the_body_is_not_even_looked_at(client, lab, token, status):
    """A forger learns nothing from the answers about which fields the route would take."""
    lab_id, _ = lab
    r = report(client, lab_id, token, {"port": 80, "host": "10.6.6.6"})
    assert r.status_code == status, r.text


def test_a_port_outside_the_clusters_range_is_refused(client):
    """A cluster with port_range: the firewall opens only those; any other port is not the job's."""
    lab_id = secrets.token_hex(8)
    token, token_digest = new_token()
    CALLBACKS.expect(lab_id, token_digest, JOB, ports=(40000, 40099))
    try:
        r = report(client, lab_id, token, {"port": 40100})
        assert r.status_code == 422, r.text
        assert "outside the cluster's ports 40000-40099" in r.json()["error"]["message"]
        assert taken(lab_id, token) is None
        assert report(client, lab_id, token, {"port": 40099}).status_code == 204
    finally:
        CALLBACKS.discard(lab_id, token_digest)


def test_a_body_too_large_is_refused_before_it_is_read(client, lab):
    lab_id, token = lab
    r = report(client, lab_id, token, {"port": 40000, "pad": "x" * 4096})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"
    assert taken(lab_id, token) is None


def test_the_token_is_worth_nothing_once_the_start_ended(client, lab):
    """Ready (or failed): the runtime discards the expectation; a replay then meets a refusal."""
    from datalabs.runtimes.slurm_port import digest

    lab_id, token = lab
    assert report(client, lab_id, token).status_code == 204
    CALLBACKS.discard(lab_id, digest(token))
    r = report(client, lab_id, token, {"port": 40001})
    assert r.status_code == 403, r.text


def test_a_new_start_spends_the_last_starts_token(client, lab):
    lab_id, old = lab
    token, new_digest = new_token()
    CALLBACKS.expect(lab_id, new_digest, "4244")  # the lab started again: a new job, a new token
    assert report(client, lab_id, old).status_code == 403
    assert report(client, lab_id, token).status_code == 204
    assert CALLBACKS.port(lab_id, new_digest, "4244") == 40000


def test_a_users_session_or_api_token_opens_nothing(people, lab):
    lab_id, token = lab
    people.user("root", role="admin")
    admin = people.login("root")
    assert report(admin, lab_id, None).status_code == 401  # the session cookie is not the job's token
    r = report(people.client, lab_id, people.token("root")["Authorization"].removeprefix("Bearer "))
    assert r.status_code == 403, r.text
    assert taken(lab_id, token) is None
