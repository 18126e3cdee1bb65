"""The test OpenID provider itself: discovery, JWKS and a code flow with PKCE yielding a valid ID token."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.accounts.oidc_provider import Client, OidcProvider, Person

REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture(scope="module")
def op():
    people = [Person("ada", "ada-pass", "sub-ada", groups=["dl-optics", "staff"])]
    with OidcProvider(people, [Client("datalabs", "client-secret", [REDIRECT])]) as provider:
        yield provider


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _authorize(
    op, client: httpx.Client, verifier: str, nonce: str, password: str = "ada-pass"
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": "datalabs",
        "redirect_uri": REDIRECT,
        "scope": "openid profile groups",
        "state": "st",
        "nonce": nonce,
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    }
    form = client.get(op.authorize_url(**params))
    assert form.status_code == 200 and "Sign in to the test provider" in form.text
    return client.post(op.authorize_url(**params), data={"username": "ada", "password": password})


def test_discovery_and_jwks(op):
    doc = httpx.get(op.issuer + "/.well-known/openid-configuration").json()
    assert doc["issuer"] == op.issuer and doc["end_session_endpoint"] == op.issuer + "/logout"
    keys = KeySet.import_key_set(httpx.get(doc["jwks_uri"]).json())
    assert [k.kid for k in keys.keys] == [op.key.kid]
    assert "d" not in httpx.get(doc["jwks_uri"]).json()["keys"][0]  # public part only


def test_code_flow_yields_valid_id_token(op):
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    with httpx.Client() as browser:
        back = _authorize(op, browser, verifier, nonce)
        assert back.status_code == 302
        query = parse_qs(urlsplit(back.headers["location"]).query)
        assert query["state"] == ["st"]
        code = query["code"][0]
        token = httpx.post(
            op.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=("datalabs", "client-secret"),
        )
        assert token.status_code == 200, token.text
        body = token.json()
        jwks = KeySet.import_key_set(httpx.get(op.issuer + "/jwks").json())
        claims = jwt.decode(body["id_token"], jwks, algorithms=["RS256"]).claims
        assert claims["iss"] == op.issuer and claims["aud"] == ["datalabs"] and claims["sub"] == "sub-ada"
        assert claims["nonce"] == nonce and claims["groups"] == ["dl-optics", "staff"]
        access = jwt.decode(body["access_token"], jwks, algorithms=["RS256"]).claims
        assert access["aud"] == "datalabs-api" and access["sub"] == "sub-ada" and access["iss"] == op.issuer
        # The code is single-use; a wrong verifier is refused too.
        again = httpx.post(
            op.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=("datalabs", "client-secret"),
        )
        assert again.status_code == 400


def test_wrong_verifier_password_and_logout(op):
    with httpx.Client() as browser:
        assert _authorize(op, browser, "v" * 50, "n1", password="nope").status_code == 401
        back = _authorize(op, browser, "v" * 50, "n2")
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        bad = httpx.post(
            op.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": "w" * 50,
            },
            auth=("datalabs", "client-secret"),
        )
        assert bad.status_code == 400 and "invalid_grant" in bad.text
        # The provider remembers the browser until end_session.
        auto = browser.get(
            op.authorize_url(
                response_type="code",
                client_id="datalabs",
                redirect_uri=REDIRECT,
                scope="openid",
                nonce="n3",
                code_challenge=_challenge("v" * 50),
                code_challenge_method="S256",
            )
        )
        assert auto.status_code == 302
        assert browser.get(op.issuer + "/logout").status_code == 200
        form = browser.get(
            op.authorize_url(
                response_type="code",
                client_id="datalabs",
                redirect_uri=REDIRECT,
                scope="openid",
                nonce="n4",
                code_challenge=_challenge("v" * 50),
                code_challenge_method="S256",
            )
        )
        assert form.status_code == 200 and "Sign in" in form.text
