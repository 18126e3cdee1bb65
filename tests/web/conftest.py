"""Fixtures for the web UI tests: a real app on a temporary home, a browser-like client, users."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from datalabs.accounts import service
from datalabs.app import create_app
from datalabs.config import Settings
from datalabs.db.engine import transaction

PASSWORD = "correct horse battery"
# Extra definitions every web test sees besides the built-in ones: one valid (its tool is missing, so
# it is never available) with unknown keys and HTML in its description, and one invalid.
GOOD_META = """\
name: oddlab
title: Odd Lab
alternateName: The odd one
abstract: A lab whose tool is not installed anywhere.
description: |
  First paragraph with <script>alert("x")</script> and <b>bold</b> tags.

  Second paragraph with `code`.
version: "1.0"
creator.name: Test Creator
contactPoint.email: odd@example.org
contactPoint.organisation-name: Odd Org
mission: [Gaia]
instrument: [Astrometric]
keywords: [odd, testing]
distribution.license: MIT
citation: Odd et al. 2026
requiredDataset: [GaiaDR3]
domain: Astronomy
datePublished: "2026-01-02"
releaseNotes: nothing yet
funding: {agency: ESA}
runtime:
  kind: web
  command: ["no-such-tool-xyz", "--socket", "{socket}"]
  requires: ["no-such-tool-xyz"]
"""
BAD_META = """\
name: broken
title: Broken
version: "1"
runtime:
  kind: spaceship
"""
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def make_client(settings: Settings) -> TestClient:
    # Browsers ask for HTML; the error pages depend on it for paths that are not pages.
    return TestClient(create_app(settings), headers={"Accept": "text/html,application/xhtml+xml"})


@pytest.fixture
def catalogue_dir(tmp_path: Path) -> Path:
    root = tmp_path / "defs"
    for name, text in (("oddlab", GOOD_META), ("broken", BAD_META)):
        (root / name).mkdir(parents=True)
        (root / name / "datalab-meta.yml").write_text(text)
    return root


@pytest.fixture
def settings(tmp_path: Path, catalogue_dir: Path) -> Settings:
    return Settings(home=tmp_path / "home", catalogue={"dirs": [catalogue_dir]})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c


@pytest.fixture
def make_user(client: TestClient) -> Callable[..., str]:
    def make(name: str, role: str = "user", **kwargs) -> str:
        with transaction(client.app.state.sessions) as db:
            service.create_user(db, name, PASSWORD, role=role, **kwargs)
        return name

    return make


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD, next_url: str = ""):
    """Log in through the real form; returns the response to the POST (not followed)."""
    form = client.get("/login" + (f"?next={next_url}" if next_url else ""))
    data = {"username": name, "password": password, "csrf_token": csrf_from(form.text)}
    if next_url:
        data["next"] = next_url
    return client.post("/login", data=data, follow_redirects=False)


def post_form(client: TestClient, page: str, action: str, data: dict | None = None, **kwargs):
    """Submit a form the way a browser does: load `page`, take its CSRF token, POST to `action`."""
    token = csrf_from(client.get(page).text)
    return client.post(action, data={**(data or {}), "csrf_token": token}, **kwargs)


@pytest.fixture
def admin(client: TestClient, make_user) -> TestClient:
    make_user("ada", role="admin", email="ada@example.org")
    assert login(client, "ada").status_code == 303
    return client


@pytest.fixture
def user(client: TestClient, make_user) -> TestClient:
    make_user("bob")
    assert login(client, "bob").status_code == 303
    return client


# Helpers reach the tests as fixtures, so no test module imports this conftest by name.
@pytest.fixture(name="login")
def login_fixture() -> Callable[..., object]:
    return login


@pytest.fixture(name="post_form")
def post_form_fixture() -> Callable[..., object]:
    return post_form


@pytest.fixture(name="csrf_from")
def csrf_from_fixture() -> Callable[[str], str]:
    return csrf_from


def card_kinds(page: str) -> dict[str, str]:
    """{datalab name: kind} of the cards on a catalogue page, in order."""
    return dict(re.findall(r'data-name="([^"]+)" data-kind="([^"]+)"', page))
