# ruff: noqa: F811  (fixtures imported from test_oidc_login are parameters here)
"""A sign-in provider's access tokens as API Bearer tokens: audience-checked, signature-checked, mapped to
the user linked to the subject; the platform's own tokens keep working."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.accounts.test_oidc_login import CALLBACK, browser, op, op2, settings, sign_in  # noqa: F401

FOREIGN = RSAKey.generate_key(2048, parameters={"kid": "foreign"})


def provider_access_token(op, name: str, password: str) -> str:
    """An access token straight from the provider's code flow (as a CLI or another app would get one)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = op.authorize_url(
        response_type="code",
        client_id="datalabs",
        redirect_uri=CALLBACK,
        scope="openid",
        nonce="n",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    with httpx.Client() as outside:
        back = outside.post(url, data={"username": name, "password": password})
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    answer = httpx.post(op.issuer + "/token", data=data, auth=("datalabs", "client-secret"))
    return answer.json()["access_token"]


def me(client, token: str):
    client.cookies.clear()
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def claims_for(op, sub: str = "sub-ada", **over) -> dict:
    now = int(time.time())
    return {"iss": op.issuer, "sub": sub, "aud": "datalabs-api", "iat": now, "exp": now + 300, **over}


def test_provider_access_token_maps_to_the_linked_user(browser, op, people):
    assert sign_in(browser, op).status_code == 303  # links ada's subject
    token = provider_access_token(op, "ada", "ada-pass")
    answer = me(browser, token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "ada" and answer.json()["via"] == "token"
    assert answer.json()["groups"] == ["optics"]
    # The platform's own tokens keep working beside them.
    people.user("zed")
    browser.cookies.clear()
    assert browser.get("/api/v1/me", headers=people.token("zed")).json()["name"] == "zed"


def test_unknown_subject_refused(browser, op):
    assert sign_in(browser, op).status_code == 303
    bob = provider_access_token(op, "bob", "bob-pass")  # bob never signed in here: no linked user
    answer = me(browser, bob)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_token"


def _hs256(op, claims: dict) -> str:
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    head = part({"alg": "HS256", "kid": op.key.kid}) + "." + part(claims)
    mac = hmac.new(op.key.as_pem(private=False), head.encode(), "sha256").digest()
    return head + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "forge",
    [
        lambda op: op.sign(claims_for(op, aud="someone-else")),
        lambda op: op.sign(claims_for(op, aud="datalabs")),  # an ID token's audience is not the API's
        lambda op: op.sign(claims_for(op, exp=int(time.time()) - 3600)),
        lambda op: op.sign(claims_for(op), key=FOREIGN, header={"kid": op.key.kid}),
        lambda op: op.sign(claims_for(op), key=FOREIGN),
        lambda op: op.sign(claims_for(op), alg="none"),
        lambda op: _hs256(op, claims_for(op)),
        lambda op: op.sign(claims_for(op, iss="http://127.0.0.1:1")),
        lambda op: op.sign(claims_for(op))[:-4] + "AAAA",
    ],
    ids=[
        "audience",
        "id-token-audience",
        "expired",
        "signature",
        "foreign-kid",
        "alg-none",
        "hs256",
        "issuer",
        "tampered",
    ],
)
def test_bad_access_tokens_refused(browser, op, forge):
    assert sign_in(browser, op).status_code == 303
    assert me(browser, op.sign(claims_for(op))).status_code == 200  # the same token, well made, is accepted
    answer = me(browser, forge(op))
    assert answer.status_code == 401, answer.text
