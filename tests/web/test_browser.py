"""The UI in a real browser (Debian's Chromium driven by Playwright) against the real server process:
log in, filter the catalogue live (htmx), read a datalab's page, create and revoke a token, log out."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from datalabs.accounts import service
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from tests.live import live_server

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN, PASSWORD = "ada", "correct horse battery"
SCREENSHOTS = Path("/tmp")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`datalabs serve` on a fresh DATALABS_HOME with one admin user."""
    home = tmp_path_factory.mktemp("browser-home")
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        service.create_user(db, ADMIN, PASSWORD, role="admin", email="ada@example.org")
    engine.dispose()
    with live_server(home) as base:
        yield base


@pytest.fixture
def page(server):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("DATALABS_REQUIRE_BROWSER") == "1":
            pytest.fail("Debian's chromium is required (DATALABS_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Debian's chromium is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=server, viewport={"width": 1360, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        # Everything must come from the platform itself (vendored static files), and run cleanly (CSP).
        page.on("request", lambda r: r.url.startswith(server) or problems.append(f"outside request {r.url}"))
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and not m.text.startswith("Failed to load resource")  # reported by the response hook
                and problems.append(f"console: {m.text}")
            ),
        )
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and not (r.status == 401 and r.url.endswith("/login"))  # the wrong password, on purpose
                and problems.append(f"HTTP {r.status} {r.url}")
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.problems = problems
        try:
            yield page
        finally:
            context.close()
            browser.close()


def card_names(page) -> list[str]:
    return page.locator(".cards > li.card").evaluate_all("els => els.map(e => e.dataset.name)")


def card_kinds(page) -> set[str]:
    return set(page.locator(".cards > li.card").evaluate_all("els => els.map(e => e.dataset.kind)"))


def test_browser_journey(page):
    # Anonymous: sent to the login page, then back to where we wanted to go.
    page.goto("/catalogue")
    expect(page).to_have_url(re.compile(r"/login\?next=/catalogue$"))
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/catalogue$"))
    expect(page.get_by_role("heading", name="Find a datalab")).to_be_visible()
    expect(page.get_by_role("link", name="Catalogue", exact=True)).to_have_attribute("aria-current", "page")

    everything = card_names(page)
    assert {"jupyterlab", "topcat", "jupyterlab-gnss"} <= set(everything)
    assert card_kinds(page) == {"web", "desktop"}

    # Live search (htmx, no submit): the results and the address follow the text typed.
    page.get_by_label("Search datalabs").press_sequentially("jupyter", delay=30)
    expect(page).to_have_url(re.compile(r"q=jupyter"))
    expect(page.locator(".cards > li.card")).not_to_have_count(len(everything))
    jupyter = card_names(page)
    assert {"jupyterlab", "jupyterlab-gnss"} <= set(jupyter) and "ds9" not in jupyter
    expect(page.locator("#result-count")).to_contain_text(f"{len(jupyter)} datalabs matching")

    # Ticking a mission facet narrows further; the ticked box survives the swap.
    page.get_by_role("checkbox", name=re.compile(r"^GNSS")).check()
    expect(page.locator(".cards > li.card")).to_have_count(1)
    assert card_names(page) == ["jupyterlab-gnss"]
    expect(page).to_have_url(re.compile(r"mission=GNSS"))
    expect(page.get_by_role("checkbox", name=re.compile(r"^GNSS"))).to_be_checked()

    # A kind filter from a fresh catalogue: only desktop applications remain.
    page.goto("/catalogue")
    page.get_by_role("checkbox", name=re.compile(r"^Desktop")).check()
    expect(page).to_have_url(re.compile(r"kind=desktop"))
    expect(page.locator('.cards > li.card[data-kind="web"]')).to_have_count(0)
    assert card_kinds(page) == {"desktop"} and "topcat" in card_names(page)
    page.goto("/catalogue")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / "datalabs-catalogue.png"), full_page=True)

    # The detail page shows the metadata and the versions.
    page.get_by_role("link", name="JupyterLab", exact=True).click()
    expect(page).to_have_url(re.compile(r"/catalogue/jupyterlab$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("JupyterLab")
    for text in ("JupyterLab (Python 3)", "BSD-3-Clause", "Project Jupyter contributors", "requirements.txt"):
        expect(page.get_by_text(text, exact=True).first).to_be_visible()
    versions = page.locator(".versions")
    expect(versions.get_by_role("link", name="4.3.0")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("Not available yet").first).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("^Launch"))).to_have_count(0)
    expect(page.locator(".detail-thumb img")).to_have_js_property("complete", True)
    assert page.locator(".detail-thumb img").evaluate("img => img.naturalWidth") > 0
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / "datalabs-detail.png"), full_page=True)
    versions.get_by_role("link", name="4.2.0").click()
    expect(page.get_by_text("You are looking at version 4.2.0")).to_be_visible()

    # Tokens: create one, see its secret once, revoke it.
    page.get_by_role("link", name=re.compile(ADMIN)).click()
    expect(page).to_have_url(re.compile(r"/account/tokens$"))
    page.get_by_label("Name").fill("browser-token")
    page.get_by_role("checkbox", name=re.compile(r"^catalogue:read")).check()
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_text("Copy it now, it will not be shown again.")).to_be_visible()
    secret = page.get_by_label("Your new token").input_value()
    assert secret.startswith("dl_")
    page.screenshot(path=str(SCREENSHOTS / "datalabs-tokens.png"), full_page=True)
    row = page.locator("#tokens-table tbody tr", has_text="browser-token")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Revoke token browser-token").click()
    expect(page.get_by_role("status")).to_contain_text("Token 'browser-token' revoked.")
    expect(page.locator("#tokens-table tbody tr", has_text="browser-token")).to_have_count(0)
    expect(page.get_by_label("Your new token")).to_have_count(0)

    # Admin area renders for the admin.
    page.get_by_role("link", name="Admin", exact=True).click()
    expect(page.get_by_role("heading", name="Add a user")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "datalabs-admin-users.png"), full_page=True)

    # Log out from the header; the session is gone.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text("You have been logged out.")).to_be_visible()
    page.goto("/account/tokens")
    expect(page).to_have_url(re.compile(r"/login\?next=/account/tokens$"))

    assert page.problems == []
