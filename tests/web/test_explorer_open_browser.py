"""Open in Datalab as a notebook, for real: `datalabs serve`, a harvested data volume with a FITS table,
Debian's Chromium, and a REAL JupyterLab in its sandbox. The dialog offers the datalab that opens FITS
tables, the lab opens in a new tab, and once it runs the notebook is there with its first cell run in
the notebook's own kernel (the table shown; the variables live for the next cell) and saved with its
outputs in the user's workspace."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.labs.test_jupyter import admin
from tests.live import destroy_labs
from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page
from tests.web.test_browser_jupyterlab import BAD

# No skip without bubblewrap: `make setup` installs it (a base package), so its absence is a failure.
pytestmark = pytest.mark.slow
FITS_NOTEBOOK = """\
title: FITS Notebook
version: "1.0"
associatedMedia: [{encodingFormat: application/fits, open: notebook, preference: 90}]
runtime:
  kind: web
  command: ["jupyter-lab", "--no-browser", "--ServerApp.sock={socket}", "--ServerApp.base_url={base_url}",
            "--ServerApp.root_dir=/media", "--ContentsManager.preferred_dir=home/my_workspace",
            "--ServerApp.allow_remote_access=True"]
  requires: ["jupyter-lab"]
  secret_env: JUPYTER_TOKEN
  secret_header: "Authorization: token {secret}"
  ready_path: "{base_url}api/status"
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("open-notebook")
    (home / "defs" / "fitsnb").mkdir(parents=True)
    (home / "defs" / "fitsnb" / "datalab-meta.yml").write_text(FITS_NOTEBOOK)
    volume = tmp_path_factory.mktemp("Stars")
    from astropy.table import Table

    Table({"star": ["Vega", "Deneb", "Altair"], "vmag": [0.03, 1.25, 0.77]}).write(volume / "stars.fits")
    volume.chmod(0o755)
    env = {
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(home / "defs")]),
        "DATALABS_CATALOGUE__BUILTIN": "false",
    }
    for base in _server(home, env):
        token = admin(home, "create-token", ADMIN)
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as api:
            assert (
                api.post("/api/v1/volumes", json={"name": "Stars", "host_path": str(volume)}).status_code
                == 201
            )
            assert api.post("/api/v1/volumes/Stars/harvest").status_code == 202
            deadline = time.monotonic() + 60
            while (state := api.get("/api/v1/volumes/Stars/harvest").json()["state"]) in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline, "the harvest did not finish"
                time.sleep(0.2)
            assert state == "done"
        try:
            yield home, base
        finally:
            destroy_labs(base, ADMIN, PASSWORD)


def test_a_fits_table_opens_as_a_notebook_whose_first_cell_ran(platform):
    home, base = platform
    with browser_page(base) as page:
        page.goto("/login")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto("/explorer/open?id=Stars:stars.fits")
        expect(page.get_by_text("Datalabs that open application/fits files")).to_be_visible()
        with page.context.expect_page() as opened:
            page.get_by_role("button", name="Launch FITS Notebook").click()
        lab = opened.value
        expect(page).to_have_url(re.compile(r"/explorer/open\?id="))  # the explorer's tab stays
        # The start page, then the page that makes the notebook, then the notebook in JupyterLab.
        lab.wait_for_url(
            re.compile(r"/datalabs/[0-9a-f]+/lab/tree/home/my_workspace/from-explorer/"), timeout=120_000
        )
        assert lab.url.endswith("/from-explorer/stars.fits.ipynb")
        output = lab.locator(".jp-NotebookPanel .jp-OutputArea-output")
        expect(output.filter(has_text="Deneb").first).to_be_visible(timeout=60_000)  # the table's rows
        expect(lab.locator(".jp-NotebookPanel .jp-InputPrompt", has_text="[1]").first).to_be_visible()
        # Its kernel is the one that ran the cell: `table` is there for the next one.
        expect(lab.locator(".jp-StatusBar-TextItem", has_text="| Idle").first).to_be_visible(timeout=60_000)
        lab.locator(".jp-NotebookPanel .jp-Cell").last.click()
        lab.keyboard.press("Escape")
        lab.keyboard.press("b")  # a new cell below
        lab.keyboard.press("Enter")
        lab.keyboard.type("round(float(table['vmag'].sum()), 2)")
        lab.keyboard.press("Shift+Enter")
        expect(output.filter(has_text="2.05").first).to_be_visible(timeout=60_000)
        assert [p for p in page.problems if BAD.match(p)] == [], page.problems

    saved = home / "workspaces" / "users" / ADMIN / "from-explorer" / "stars.fits.ipynb"
    notebook = json.loads(saved.read_text())
    first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    assert "Table.read(hdu)" in "".join(first["source"]) and first["execution_count"] == 1
    assert any("Deneb" in json.dumps(o) for o in first["outputs"])
