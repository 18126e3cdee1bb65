"""The UI in a real browser (Debian's Chromium driven by Playwright) against the real server process:
log in, filter the catalogue live (htmx), read a datalab's page, create and revoke a token, log out;
and, with the fake runtime, launch a lab, follow its start live (SSE) into the lab, stop and destroy it."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

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


def _server(home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`datalabs serve` on a fresh DATALABS_HOME with one admin user."""
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        service.create_user(db, ADMIN, PASSWORD, role="admin", email="ada@example.org")
    engine.dispose()
    with live_server(home, env) as base:
        yield base


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    yield from _server(tmp_path_factory.mktemp("browser-home"))


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory) -> Iterator[str]:
    """The platform with the fake runtime and two datalabs: one that starts, one that crashes."""
    home = tmp_path_factory.mktemp("browser-labs")
    for name, title, command in (("fake", "Fake Lab", "fake-lab"), ("crashy", "Crashy Lab", "fake-crash")):
        (home / "defs" / name).mkdir(parents=True)
        (home / "defs" / name / "datalab-meta.yml").write_text(
            f'title: {title}\nversion: "1.0"\nruntime:\n  kind: web\n  command: [{command}]\n'
        )
    env = {
        "DATALABS_LABS__BACKEND": "datalabs.runtimes.testing:FakeRuntime",
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(home / "defs")]),
        "DATALABS_CATALOGUE__BUILTIN": "false",
    }
    yield from _server(home, env)


# Issue 15: no page of the platform scrolls sideways. Checked on every page every browser test loads
# (and after each htmx swap), at the viewport the test uses: reported as a problem of the page.
OVERFLOW_CHECK = """(origin) => {
  if (location.origin !== origin) return;  // a lab's own pages (JupyterLab, noVNC) are not ours to lay out
  const check = () => {
    const root = document.documentElement;
    if (root.scrollWidth > window.innerWidth) {
      const wide = `${root.scrollWidth} px wide in ${window.innerWidth} px`;
      console.error(`datalabs:overflow ${location.pathname} is ${wide}`);
    }
  };
  window.addEventListener("load", () => setTimeout(check, 50));
  document.addEventListener("htmx:afterSettle", () => setTimeout(check, 50));
}"""
VIEWPORT = {"width": 1280, "height": 800}


def log_in(page, name: str, password: str) -> None:
    """Submit the login form of the page shown; return once the page it leads to has run its scripts. A
    check or click before htmx is in place would change nothing (the explorer's facets under load)."""
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():  # to the "load" event of the page after the login
        page.get_by_role("button", name="Log in").click()


@contextmanager
def browser_page(base: str, viewport: dict | None = None):
    """A page of a fresh browser context on `base`. Everything any of the context's pages (popups too)
    requests must come from the platform or a lab's own origin, answer without error, log no error and
    raise none, and no platform page may scroll sideways: what does not is listed in `page.problems`."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("DATALABS_REQUIRE_BROWSER") == "1":
            pytest.fail("Debian's chromium is required (DATALABS_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Debian's chromium is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base, viewport=viewport or VIEWPORT)
        origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"
        context.add_init_script(f"({OVERFLOW_CHECK})({json.dumps(origin)})")
        page = context.new_page()
        problems: list[str] = []
        # Everything must come from the platform itself (vendored static files) or, for a lab's pages,
        # from that lab's own origin (labs.origin_url's default), and run cleanly (CSP).
        lab_origin = re.compile(rf"^http://[0-9a-f]+\.lab\.localhost:{urlsplit(base).port}/")
        context.on(
            "request",
            lambda r: (
                r.url.startswith(base)
                or lab_origin.match(r.url)
                or problems.append(f"outside request {r.url}")
            ),
        )
        context.on("console", lambda m: _console(m, problems))
        context.on(
            "response",
            lambda r: (
                r.status >= 400
                and not (r.status == 401 and r.url.endswith("/login"))  # the wrong password, on purpose
                and problems.append(f"HTTP {r.status} {r.url}")
            ),
        )
        context.on("weberror", lambda e: problems.append(f"page error: {e.error}"))
        page.problems = problems
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _console(message, problems: list[str]) -> None:
    if message.type != "error" or message.text.startswith("Failed to load resource"):  # see "response"
        return
    if message.text.startswith("datalabs:overflow "):
        problems.append("horizontal scroll: " + message.text.removeprefix("datalabs:overflow "))
    else:
        problems.append(f"console: {message.text}")


@pytest.fixture
def page(server):
    with browser_page(server) as page:
        yield page


@pytest.fixture
def lab_page(lab_server):
    with browser_page(lab_server) as page:
        yield page


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
    # Whether JupyterLab can start depends on the host (its environment built or not); either way the
    # page is consistent: a reason and no Launch button, or the button to the launch form.
    launch = page.get_by_role("link", name=re.compile("^Launch"))
    if page.locator(".detail-intro .badge-warn").count():
        expect(page.get_by_text("Not available yet").first).to_be_visible()
        expect(launch).to_have_count(0)
    else:
        expect(launch).to_have_attribute("href", "/catalogue/jupyterlab/launch")
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


def test_browser_lab_journey(lab_page):
    page = lab_page
    page.goto("/login")
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/catalogue$"))

    # Launch from the card, name it in the advanced section; the start page opens the lab by itself.
    page.locator('.cards > li.card[data-name="fake"]').get_by_role("link", name="Launch").click()
    expect(page).to_have_url(re.compile(r"/catalogue/fake/launch$"))
    expect(page.get_by_label("Name")).not_to_be_visible()
    page.get_by_text("Advanced configuration").click()
    page.get_by_label("Name").fill("Browser lab")
    page.get_by_role("button", name="Launch", exact=True).click()
    page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/$"))
    expect(page.get_by_text("fake lab ok")).to_be_visible()
    lab_url = page.url

    # Back on the start page it stays put (no second jump into the lab), and offers Open.
    # Whether the start page stayed in history depends on whether the (instant) fake lab was already
    # running when it loaded, so open it directly: what matters is that it does not jump again.
    page.goto("/labs/" + urlsplit(lab_url).path.strip("/").split("/")[1])
    expect(page).to_have_url(re.compile(r"/labs/[0-9a-f]+$"))
    expect(page.get_by_text("Your lab is running.")).to_be_visible()
    page.wait_for_timeout(500)
    expect(page).to_have_url(re.compile(r"/labs/[0-9a-f]+$"))
    expect(page.get_by_role("link", name="Open Browser lab")).to_have_attribute(
        "href", urlsplit(lab_url).path
    )

    # The header lists the running lab for switching.
    page.locator(".running-menu summary").click()
    expect(page.locator(".running-list").get_by_role("link", name="Browser lab")).to_be_visible()

    # A lab that crashes while starting ends on its page with the reason, not a spinner.
    page.goto("/catalogue/crashy/launch")
    page.get_by_role("button", name="Launch", exact=True).click()
    expect(page.locator(".failure-box")).to_contain_text("exited with code 3")
    expect(page.locator("progress")).to_have_count(0)

    # My datalabs: stop the running lab, then destroy it through the confirmation page.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My datalabs").click()
    page.get_by_role("button", name="Stop Browser lab").click()
    expect(page.get_by_role("status").first).to_contain_text("'Browser lab' stopped.")
    page.get_by_role("link", name="Destroy Browser lab").click()
    page.get_by_role("button", name="Destroy lab").click()
    expect(page.get_by_role("status").first).to_contain_text("'Browser lab' destroyed")
    expect(page.locator(".lab-card", has_text="Browser lab")).to_have_count(0)

    assert page.problems == []
