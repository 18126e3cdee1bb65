"""Open in Datalab from the explorer, in process: the dialog lists running labs and datalabs that open
files, the form redirects to the file in a lab (or to a launched lab's start page, which goes on to the
file), errors are shown in the dialog, and the start page only follows `open` links into that lab."""

from __future__ import annotations

import html
from urllib.parse import quote

import pytest

from tests.assets.seed import seed
from tests.web.labs_support import HTML, lab_settings, launched, text_of, wait_state

GNSS = "GsscOpen:obs/2024/001/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
NOTEBOOK = """\
title: Notebook
version: "1.0"
runtime:
  kind: web
  command: [jupyter-lab, "--ServerApp.sock={socket}", "--ServerApp.root_dir=/media/home/my_workspace"]
"""


@pytest.fixture
def settings(tmp_path, catalogue_dir):
    (catalogue_dir / "notebook").mkdir(parents=True)
    (catalogue_dir / "notebook" / "datalab-meta.yml").write_text(NOTEBOOK)
    return lab_settings(tmp_path, catalogue_dir)


@pytest.fixture
def explorer(user, tmp_path):
    """bob, the seeded index, and the file behind GNSS on the GsscOpen volume."""
    seed(user.app, tmp_path)
    path = tmp_path / "GsscOpen" / GNSS.split(":", 1)[1]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RINEX")
    return user


def dialog(client, asset_id: str = GNSS, **headers):
    return client.get("/explorer/open", params={"id": asset_id}, headers=headers)


def submit(client, **fields):
    page = dialog(client).text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    data = {"id": GNSS, "csrf_token": token, **fields}
    return client.post("/explorer/open", data=data, follow_redirects=False)


def test_result_rows_link_to_the_dialog(explorer):
    page = explorer.get("/explorer", params={"q": "ABMF00GLP_R_2024001 GO"}).text
    href = "/explorer/open?id=" + quote(GNSS, safe="/")  # works without JavaScript as a page
    assert f'href="{href}" hx-get="{href}" hx-target="#open-dialog"' in page
    assert '<dialog id="open-dialog"' in page


def test_dialog_lists_running_labs_and_datalabs_that_open_files(explorer):
    lab = launched(explorer, "fake", volumes=["GsscOpen"])
    assert wait_state(explorer, lab)["state"] == "running"
    fragment = dialog(explorer, **{"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    words = text_of(fragment.text)
    assert "Open in Fake Lab" in words and "reads it from data volume GsscOpen" in words
    assert "Launch Notebook" in words  # a JupyterLab
    assert "Launch Fake Lab" not in words  # a web app that cannot be told to open a file
    page = dialog(explorer)  # without JavaScript: the same choices on a page of their own
    assert "<html" in page.text and "Open in Fake Lab" in text_of(page.text)


def test_dialog_hides_assets_of_volumes_the_user_may_not_see(explorer):
    assert dialog(explorer, "AstroSecret:jwst/secret_nircam.fits").status_code == 404


def test_opening_in_a_running_lab_redirects_to_it(explorer):
    lab = launched(explorer, "fake")
    assert wait_state(explorer, lab)["state"] == "running"
    r = submit(explorer, lab_id=lab)
    assert (r.status_code, r.headers["location"]) == (303, f"/datalabs/{lab}/")
    copy = explorer.get(
        "/api/v1/workspaces/me/files/from-explorer/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz",
        headers={"Accept": "application/json"},
    )
    assert copy.content == b"RINEX"  # the lab lacks the volume: the file was copied for it


def test_launching_goes_to_the_start_page_then_the_file(explorer):
    r = submit(explorer, datalab="fake")
    assert r.status_code == 303
    start = r.headers["location"]
    assert start.startswith("/labs/") and "?open=%2Fdatalabs%2F" in start
    lab = start.split("/labs/", 1)[1].split("?", 1)[0]
    assert wait_state(explorer, lab)["state"] == "running"
    page = explorer.get(start).text
    assert f'data-auto-open="/datalabs/{lab}/"' in page  # labs.js goes on to the file


def test_the_start_page_follows_open_links_into_that_lab_only(explorer):
    lab = launched(explorer, "fake")
    assert wait_state(explorer, lab)["state"] == "running"
    explorer.get(f"/labs/{lab}")  # the one-shot "launched" message is used up
    inside = f"/datalabs/{lab}/lab/tree/from-explorer/a b.rnx"
    page = explorer.get(f"/labs/{lab}", params={"open": inside}).text
    assert f'href="{html.escape(inside)}">Open the file' in page
    assert "data-auto-open" not in page  # only right after a launch: Back to this page does not bounce
    for bad in (
        "https://evil.example/",
        "/datalabs/other/",
        f"/datalabs/{lab}/../../admin",
        "//evil.example",
    ):
        page = explorer.get(f"/labs/{lab}", params={"open": bad}, headers=HTML).text
        assert "Open the file" not in page and "evil" not in page and "admin" not in page.split("<main", 1)[1]


def test_errors_are_shown_in_the_dialog(explorer):
    r = submit(explorer)
    assert r.status_code == 422 and "Choose one of your running labs" in text_of(r.text)
    r = submit(explorer, lab_id="0123456789abcdef")
    assert r.status_code == 404 and "No lab '0123456789abcdef'" in text_of(r.text)
    assert "Launch Notebook" in text_of(r.text)  # the choices are still there
