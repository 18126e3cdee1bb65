"""The app store in a real browser (Debian's Chromium via Playwright) against `datalabs serve`, with real
builds (uv in bubblewrap, a local wheel, no network) and labs on the fake runtime: a user creates a
datalab from uploaded files, watches its build log live, test-launches it and submits it; the moderator
approves it in the queue; another user then finds it in the public catalogue and in the app store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from datalabs.accounts import service
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from tests.builder.support import META, NOTEBOOK, write_wheel
from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page
from tests.web.test_browser import log_in as browser_log_in

pytestmark = pytest.mark.slow
AUTHOR, READER = "bob", "eve"
BUILD_TIMEOUT = 180_000  # ms: a cold uv build on a busy machine


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("appstore-home")
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        for name in (AUTHOR, READER):
            service.create_user(db, name, PASSWORD)
    engine.dispose()
    env = {"DATALABS_LABS__BACKEND": "datalabs.runtimes.testing:FakeRuntime"}
    yield from _server(home, env)


@pytest.fixture
def upload_files(tmp_path: Path) -> list[str]:
    """A datalab as separate files (a browser's file input sends them flat, without folders): its
    requirements install the tiny package from the wheel uploaded beside them. Its labs run on the fake
    runtime."""
    folder = tmp_path / "upload"
    folder.mkdir()
    meta = META.format(license="MIT") + 'runtime:\n  command: ["fake-lab"]\n  requires: []\n'
    (folder / "datalab-meta.yml").write_text(meta)
    (folder / "analysis.ipynb").write_text(NOTEBOOK)
    (folder / "requirements.txt").write_text("--no-index\n--find-links .\ndl-tinypkg==1.0\n")
    wheel = write_wheel(folder)
    return [str(folder / n) for n in ("datalab-meta.yml", "analysis.ipynb", "requirements.txt")] + [
        str(wheel)
    ]


def log_in(page, name: str) -> None:
    browser_log_in(page, name, PASSWORD)


def log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))


def test_create_build_test_submit_approve_then_everyone_finds_it(server, upload_files):
    with browser_page(server) as page:
        # The author starts from the app store.
        page.goto("/appstore")
        log_in(page, AUTHOR)
        expect(page.get_by_role("heading", name="App store", level=1)).to_be_visible()
        page.get_by_role("link", name="Create datalab").click()

        # 1. Type: a name on the platform's JupyterLab base.
        expect(page.get_by_label(re.compile(r"^JupyterLab \(the platform"))).to_be_checked()
        page.get_by_label("Name").fill("tiny")
        page.screenshot(path="/tmp/datalabs-appstore-new.png", full_page=True)
        page.get_by_role("button", name="Next: sources").click()

        # 2. Sources: several files uploaded at once.
        expect(page).to_have_url(re.compile(r"/appstore/tiny/sources$"))
        page.get_by_label("Files or one .zip").set_input_files(upload_files)
        page.screenshot(path="/tmp/datalabs-appstore-sources.png", full_page=True)
        page.get_by_role("button", name="Upload").click()

        # 3. Metadata, pre-filled from the uploaded datalab-meta.yml; the form's changes win.
        expect(page).to_have_url(re.compile(r"/appstore/tiny/metadata$"))
        expect(page.get_by_label("Title")).to_have_value("Tiny analysis")
        expect(page.get_by_label("Licence")).to_have_value("MIT")
        expect(page.get_by_label("Creator")).to_have_value("Ada Lovelace")
        expect(page.locator(".draft-summary")).to_contain_text("dl-tinypkg==1.0")
        page.get_by_label("Description").fill("Imports **dl_tinypkg** and shows its value.")
        page.screenshot(path="/tmp/datalabs-appstore-metadata.png", full_page=True)
        page.get_by_role("button", name="Build").click()

        # 4. Build: the log arrives line by line over SSE; the outcome shows in place.
        expect(page).to_have_url(re.compile(r"/appstore/tiny/versions/0\.1\.0-0$"))
        log = page.locator("#build-log")
        expect(log).to_have_attribute("data-followed", re.compile("live|done"))  # followed by appstore.js
        expect(log.locator("li").first).to_contain_text("Building tiny 0.1.0-0")
        expect(log).to_contain_text("BUILD SUCCEEDED", timeout=BUILD_TIMEOUT)
        expect(log).to_have_attribute("data-followed", "done")
        expect(page.locator("#version-state")).to_have_text("Built")
        expect(page.locator(".wizard-steps li.current")).to_contain_text("Test")
        page.screenshot(path="/tmp/datalabs-appstore-build.png", full_page=True)

        # 5. Test launch: a lab of this version starts and opens.
        page.get_by_role("button", name="Test launch").click()
        page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/$"))
        expect(page.get_by_text("fake lab ok")).to_be_visible()

        # 6. Submit for publication from the app's page; the store shows it running and as mine.
        page.goto("/appstore")
        expect(page.locator("#section-running [data-name='tiny']")).to_be_visible()
        expect(page.locator("#section-mine [data-name='tiny']")).to_be_visible()
        page.locator("#section-mine").get_by_role("link", name="Tiny analysis", exact=True).click()
        expect(page).to_have_url(re.compile(r"/appstore/tiny$"))
        page.get_by_role("button", name="Submit for publication").click()
        expect(page.get_by_role("status").first).to_contain_text("Submitted for publication")
        expect(page.locator("#app-state")).to_have_text("Waiting for review")
        page.screenshot(path="/tmp/datalabs-appstore-app.png", full_page=True)
        log_out(page)

        # The moderator approves it in the queue, after reading the metadata.
        page.goto("/appstore/review")
        log_in(page, ADMIN)
        item = page.locator(".review-item[data-name='tiny']")
        expect(item).to_contain_text("Tiny analysis")
        expect(item.locator(".review-meta")).to_contain_text("MIT")
        expect(item.get_by_role("link", name="Build log of tiny")).to_have_attribute(
            "href", "/appstore/tiny/versions/0.1.0-0"
        )
        item.get_by_label("Comment for tiny").fill("Clear and useful.")
        page.screenshot(path="/tmp/datalabs-appstore-review.png", full_page=True)
        item.get_by_role("button", name="Approve tiny").click()
        expect(page.get_by_role("status").first).to_contain_text("'tiny' approved and published")
        expect(page.get_by_text("Nothing to review.")).to_be_visible()
        log_out(page)

        # Another user finds it in the public catalogue and in the app store (live search).
        page.goto("/catalogue")
        log_in(page, READER)
        expect(page.locator(".cards > li.card[data-name='tiny']")).to_be_visible()
        page.goto("/appstore")
        page.get_by_label("Search the app store").press_sequentially("tiny", delay=30)
        expect(page).to_have_url(re.compile(r"/appstore\?q=tiny$"))
        expect(page.locator("#section-published [data-name='tiny']")).to_be_visible()
        expect(page.locator("#section-mine .card")).to_have_count(0)
        page.screenshot(path="/tmp/datalabs-appstore.png", full_page=True)
        page.locator("#section-published").get_by_role("link", name="Tiny analysis", exact=True).click()
        history = page.locator(".history-table")
        expect(history).to_contain_text("Clear and useful.")
        expect(page.get_by_role("button", name="Submit for publication")).to_have_count(0)
        assert not page.problems, json.dumps(page.problems, indent=1)


def test_a_failing_build_shows_and_highlights_its_error_line(server, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "datalab-meta.yml").write_text(META.format(license="MIT"))
    (folder / "requirements.txt").write_text("--no-index\ndl-tinypkg==9.9\n")
    with browser_page(server) as page:
        page.goto("/appstore/new")
        log_in(page, AUTHOR)
        page.get_by_label("Name").fill("broken")
        page.get_by_role("button", name="Next: sources").click()
        page.get_by_label("Files or one .zip").set_input_files(
            [str(folder / "datalab-meta.yml"), str(folder / "requirements.txt")]
        )
        page.get_by_role("button", name="Upload").click()
        page.get_by_role("button", name="Build").click()
        expect(page.locator("#version-state")).to_have_text("Build failed", timeout=BUILD_TIMEOUT)
        failure = page.locator(".build-failure")
        expect(failure).to_be_visible()
        expect(failure).to_contain_text("dl-tinypkg")
        failing = page.locator("#build-log li.log-failing")
        expect(failing.first).to_contain_text("error: No solution found")  # the tool's line
        expect(page.locator("#build-log li", has_text="uv venv")).not_to_have_class("log-failing")
        expect(failing.last).to_contain_text("BUILD FAILED")
        expect(page.get_by_role("button", name="Test launch")).to_be_hidden()  # nothing to launch
        page.screenshot(path="/tmp/datalabs-appstore-failed.png", full_page=True)
        assert not page.problems, json.dumps(page.problems, indent=1)
