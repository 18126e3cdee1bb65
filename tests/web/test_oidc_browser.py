"""Single sign-on in a real browser (Debian's Chromium via Playwright) against `datalabs serve` and the
authlib test provider (tests/accounts/oidc_provider.py): the login page's button leads to the provider's
form, signing in there lands on the platform logged in, the groups claim made the user a member of the
mapped team, and logging out ends the platform's session and the provider's (signing in again shows the
provider's form, not an automatic login)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.accounts.oidc_provider import Client, OidcProvider, Person
from tests.web.test_browser import _server, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def op() -> Iterator[OidcProvider]:
    people = [Person("grace", "grace-pass", "sub-grace", groups=["dl-optics"], email="grace@esa.int")]
    with OidcProvider(people, [Client("datalabs", "client-secret")]) as provider:
        yield provider


@pytest.fixture(scope="module")
def server(tmp_path_factory, op) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("oidc-browser-home")
    (home / "datalabs.toml").write_text(
        "[[oidc.providers]]\n"
        'name = "op"\ntitle = "Test provider"\n'
        f"issuer = {json.dumps(op.issuer)}\n"
        'client_id = "datalabs"\nclient_secret = "client-secret"\n'
        'scopes = ["openid", "profile", "groups"]\n'
        'groups_claim = "groups"\ngroup_prefix = "dl-"\n'
    )
    for base in _server(home):
        op.clients["datalabs"].post_logout_uris.append(base + "/login")
        yield base


def test_sign_in_teams_and_logout_through_the_provider(server, op):
    with browser_page(server) as page:
        page.goto("/login")
        page.get_by_role("link", name="Sign in with Test provider").click()
        expect(page).to_have_url(re.compile(re.escape(op.issuer) + r"/authorize\?"))
        page.locator("#op-username").fill("grace")
        page.locator("#op-password").fill("grace-pass")
        page.locator("#op-submit").click()
        expect(page).to_have_url(re.compile(re.escape(server) + r"/catalogue"))
        me = json.loads(page.goto("/api/v1/me").text())
        assert me["name"] == "grace" and me["groups"] == ["optics"] and me["email"] == "grace@esa.int"

        page.goto("/catalogue")
        page.get_by_role("banner").get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(re.escape(server) + r"/login$"))
        assert op.ended_sessions == 1
        assert page.goto("/api/v1/me").status == 401

        # The provider's session ended too: signing in again asks for the password.
        page.goto("/login")
        page.get_by_role("link", name="Sign in with Test provider").click()
        expect(page.locator("#op-username")).to_be_visible()
        assert op.logins == 1
        problems = [p for p in page.problems if op.issuer not in p and "/api/v1/me" not in p]
        assert problems == []
