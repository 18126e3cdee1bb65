"""Open in Datalab from the explorer, in process: the dialog lists running labs and datalabs that open
files, the form redirects to the file in a lab (or to a launched lab's start page, which goes on to the
file), errors are shown in the dialog, and the start page only follows `open` links into that lab."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from datalabs.accounts.service import get_user
from datalabs.db.engine import transaction
from datalabs.db.models import Lab
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


def test_opening_in_a_lab_that_cannot_open_files_says_where_the_file_is(explorer):
    lab = launched(explorer, "fake")
    assert wait_state(explorer, lab)["state"] == "running"
    r = submit(explorer, lab_id=lab)
    assert r.status_code == 200
    name = "ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
    words = text_of(r.text)
    assert (
        f"copied into your workspace; in the lab it is at /media/home/my_workspace/from-explorer/{name}"
        in words
    )
    assert f'href="/datalabs/{lab}/">Open the lab' in r.text
    copy = explorer.get(
        f"/api/v1/workspaces/me/files/from-explorer/{name}", headers={"Accept": "application/json"}
    )
    assert copy.content == b"RINEX"  # the lab lacks the volume: the file was copied for it


def test_a_jupyterlab_gets_the_file_itself_and_a_launched_one_its_start_page_first(explorer):
    with transaction(explorer.app.state.sessions) as db:  # a running JupyterLab of bob's (no process)
        bob = get_user(db, "bob")
        db.add(Lab(id="ab12", owner_id=bob.id, datalab="notebook", version="1.0", state="running"))
    r = submit(explorer, lab_id="ab12")
    name = "ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
    assert (r.status_code, r.headers["location"]) == (303, f"/datalabs/ab12/lab/tree/from-explorer/{name}")
    r = submit(explorer, datalab="fake")  # a web app: where the file is, and the way to its start
    lab = re.search(r'href="/labs/([0-9a-f]+)">Follow the lab', r.text).group(1)
    assert "on the lab's data volume; in the lab it is at /media/data/GsscOpen/obs/" in text_of(r.text)
    assert wait_state(explorer, lab)["state"] == "running"


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
