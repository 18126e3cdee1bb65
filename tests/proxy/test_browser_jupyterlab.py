"""JupyterLab's own frontend in a real browser (Debian's Chromium via Playwright) through the proxy:
signed in with the platform session cookie only, it loads, starts a kernel and runs a cell. This is what
proves the token masking works with the real frontend (it sends the masked token back; the proxy
replaces it) and that Jupyter's Origin/Host and XSRF checks pass behind the proxy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.proxy.conftest import JUPYTER_LAB, wait_ready

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(JUPYTER_LAB is None, reason="JupyterLab is not installed"),
]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("DATALABS_REQUIRE_BROWSER") == "1":
            pytest.fail("Debian's chromium is required (DATALABS_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Debian's chromium is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_jupyterlab_runs_a_cell_in_the_browser(env, jupyter, browser):
    with env.client({"Cookie": "datalabs_session=alice-session"}) as c:
        assert wait_ready(c).status_code == 200
    context = browser.new_context(base_url=env.url, viewport={"width": 1280, "height": 800})
    host = env.url.removeprefix("http://").split(":")[0]
    context.add_cookies([{"name": "datalabs_session", "value": "alice-session", "domain": host, "path": "/"}])
    page = context.new_page()
    failures: list[str] = []
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on(
        "response",
        lambda r: (r.status in (401, 403) or r.status >= 500) and failures.append(f"{r.status} {r.url}"),
    )
    page.goto("/datalabs/jl1/lab?reset", wait_until="domcontentloaded", timeout=60_000)
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=60_000)
    # The status bar says Idle once the kernel is up and connected over the proxied WebSocket (the
    # toolbar's indicator can say idle before that, and a cell run then would run without a kernel).
    expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first).to_be_visible(timeout=60_000)
    cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    cell.click(timeout=60_000)
    page.keyboard.type("print(6 * 7)")
    expect(cell).to_contain_text("print(6 * 7)", timeout=30_000)  # typed into the cell, not elsewhere
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
    try:
        output.wait_for(timeout=60_000)
    except Exception:
        page.screenshot(path="/tmp/jupyterlab-through-proxy.png")  # for whoever reads the CI log
        raise AssertionError(f"no output; failed responses {failures}; console {console[-20:]}") from None
    assert output.inner_text().strip() == "42"
    assert jupyter not in page.content()
    assert failures == []
    context.close()
