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
from tests.web.conftest import login
from tests.web.labs_support import HTML, browser, lab_settings, launched, text_of, wait_state

GNSS = "GsscOpen:obs/2024/001/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
NOTEBOOK = """\
title: Notebook
version: "1.0"
runtime:
  kind: web
  command: [jupyter-lab, "--ServerApp.sock={socket}", "--ServerApp.root_dir=/media/home/my_workspace"]
associatedMedia: [{encodingFormat: application/x-rinex, open: file, preference: 40}]
"""
# A desktop app that starts with the file (FakeRuntime serves any `fake-lab` command).
VIEWER = """\
title: Viewer
version: "1.0"
runtime: {kind: desktop, desktop: {command: [fake-lab]}}
associatedMedia:
  - {encodingFormat: application/x-rinex, command: [fake-lab, --load, "{path}"], preference: 60}
"""
# A JupyterLab making notebooks of RINEX files; FakeRuntime's lab answers no Jupyter API at all.
NOTEBOOKS = """\
title: Notebooks
version: "1.0"
runtime: {kind: web, command: [jupyter-fake]}
associatedMedia: [{encodingFormat: application/x-rinex, open: notebook, preference: 30}]
"""


@pytest.fixture
def settings(tmp_path, catalogue_dir):
    (catalogue_dir / "notebook").mkdir(parents=True)
    (catalogue_dir / "notebook" / "datalab-meta.yml").write_text(NOTEBOOK)
    (catalogue_dir / "viewer").mkdir(parents=True)
    (catalogue_dir / "viewer" / "datalab-meta.yml").write_text(VIEWER)
    (catalogue_dir / "notebooks").mkdir(parents=True)
    (catalogue_dir / "notebooks" / "datalab-meta.yml").write_text(NOTEBOOKS)
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


def test_dialog_lists_the_running_labs_and_datalabs_that_open_the_type_best_first(explorer):
    viewer = launched(explorer, "viewer", volumes=["GsscOpen"])
    fake = launched(explorer, "fake", volumes=["GsscOpen"])
    assert wait_state(explorer, viewer)["state"] == wait_state(explorer, fake)["state"] == "running"
    fragment = dialog(explorer, **{"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    words = text_of(fragment.text)
    assert "Open in Viewer" in words and "reads it from data volume GsscOpen" in words
    assert "Open in Fake Lab" not in words  # it opens no files
    # Best first: the viewer (preference 60) before the notebook (40); nothing that does not open RINEX.
    assert words.index("Launch Viewer") < words.index("Launch Notebook")
    assert "starts with the file loaded" in words and "Launch Fake Lab" not in words
    assert 'target="_blank"' in fragment.text  # the lab opens in a new tab: the explorer stays
    page = dialog(explorer)  # without JavaScript: the same choices on a page of their own
    assert "<html" in page.text and "Open in Viewer" in text_of(page.text)


def test_dialog_hides_assets_of_volumes_the_user_may_not_see(explorer):
    assert dialog(explorer, "AstroSecret:jwst/secret_nircam.fits").status_code == 404


def test_a_running_desktop_is_told_where_the_file_is(explorer):
    lab = launched(explorer, "viewer")  # without the volume
    assert wait_state(explorer, lab)["state"] == "running"
    r = submit(explorer, lab_id=lab)
    assert r.status_code == 200
    name = "ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
    words = text_of(r.text)
    assert (
        f"copied into your workspace; in the lab it is at /media/home/my_workspace/from-explorer/{name}"
        in words
    )
    assert "open it from the app's File menu" in words
    assert f'href="/datalabs/{lab}/">Open the lab' in r.text
    copy = explorer.get(
        f"/api/v1/workspaces/me/files/from-explorer/{name}", headers={"Accept": "application/json"}
    )
    assert copy.content == b"RINEX"  # the lab lacks the volume: the file was copied for it


def test_a_launched_desktop_starts_with_the_file(explorer):
    r = submit(explorer, datalab="viewer")  # to its start page, which goes into it once it runs
    lab = re.fullmatch(r"/labs/([0-9a-f]+)", r.headers["location"]).group(1)
    assert "You launched a lab to open '/media/data/GsscOpen/obs/" in text_of(
        explorer.get(f"/labs/{lab}").text
    )
    assert wait_state(explorer, lab)["state"] == "running"
    path = "/media/data/GsscOpen/" + GNSS.split(":", 1)[1]
    log = explorer.get(f"/api/v1/labs/{lab}/logs", headers={"Accept": "text/plain"}).text
    assert f"command: ['fake-lab', '--load', '{path}']" in log


def test_a_jupyterlab_gets_the_file_itself_and_a_launched_one_its_start_page_first(explorer):
    with transaction(explorer.app.state.sessions) as db:  # a running JupyterLab of bob's (no process)
        bob = get_user(db, "bob")
        db.add(Lab(id="ab12", owner_id=bob.id, datalab="notebook", version="1.0", state="running"))
    r = submit(explorer, lab_id="ab12")
    name = "ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
    assert (r.status_code, r.headers["location"]) == (303, f"/datalabs/ab12/lab/tree/from-explorer/{name}")
    r = submit(explorer, datalab="notebook")  # its root is the workspace: the file is copied there
    lab = re.fullmatch(r"/labs/([0-9a-f]+)\?open=.*", r.headers["location"]).group(1)
    inside = f"/datalabs/{lab}/lab/tree/from-explorer/{name}"
    assert r.headers["location"] == f"/labs/{lab}?open=" + quote(inside, safe="")


def test_a_notebook_opener_comes_back_once_the_lab_runs_and_a_lab_without_jupyter_is_an_error(explorer):
    r = submit(explorer, datalab="notebooks")
    location = r.headers["location"]
    lab = re.fullmatch(r"/labs/([0-9a-f]+)\?open=.*", location).group(1)
    start = explorer.get(location).text
    resume = f"/explorer/open/continue?lab_id={lab}&amp;id=" + quote(GNSS, safe="")
    assert resume in start  # where the start page goes once the lab runs
    assert wait_state(explorer, lab)["state"] == "running"
    page = explorer.get(html.unescape(resume)).text
    assert 'id="open-resume"' in page and f'name="lab_id" value="{lab}"' in page  # a POST, not this GET
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = explorer.post("/explorer/open", data={"id": GNSS, "lab_id": lab, "csrf_token": token})
    # FakeRuntime's lab answers "fake lab ok" to everything: the platform says so, and nothing breaks
    assert r.status_code == 502 and "The notebook could not be made in the lab" in text_of(r.text)
    assert "not JSON" in text_of(r.text)


def test_the_start_page_follows_open_links_into_that_lab_only(explorer):
    lab = launched(explorer, "fake")
    assert wait_state(explorer, lab)["state"] == "running"
    explorer.get(f"/labs/{lab}")  # the one-shot "launched" message is used up
    inside = f"/datalabs/{lab}/lab/tree/from-explorer/a b.rnx"
    page = explorer.get(f"/labs/{lab}", params={"open": inside}).text
    assert re.search(f'href="{re.escape(html.escape(inside))}"[^>]*>Open the file', page)
    assert "data-auto-open" not in page  # only right after a launch: Back to this page does not bounce
    resume = f"/explorer/open/continue?lab_id={lab}&id=x%3Ay"
    page = explorer.get(f"/labs/{lab}", params={"open": resume}).text
    assert re.search(f'href="{re.escape(html.escape(resume))}"[^>]*>Open the file', page)
    for bad in (
        "https://evil.example/",
        "/datalabs/other/",
        f"/datalabs/{lab}/../../admin",
        "//evil.example",
        "/explorer/open/continue?lab_id=other&id=x",  # another lab's
        f"/explorer/open/continue?lab_id={lab}&id=x&next=https://evil.example/admin",  # rebuilt: dropped
    ):
        page = explorer.get(f"/labs/{lab}", params={"open": bad}, headers=HTML).text
        assert "evil" not in page and "admin" not in page.split("<main", 1)[1]
        assert "Open the file" not in page or "lab_id=other" not in page


def test_errors_are_shown_in_the_dialog(explorer):
    r = submit(explorer)
    assert r.status_code == 422 and "Choose one of your running labs" in text_of(r.text)
    r = submit(explorer, lab_id="0123456789abcdef")
    assert r.status_code == 404 and "No lab '0123456789abcdef'" in text_of(r.text)
    assert "Launch Notebook" in text_of(r.text)  # the choices are still there


def test_continuing_an_open_is_for_the_labs_owner_only(explorer, make_user):
    """Anonymous: the login page. Another user: their own choices only — a file they may not see is not
    found, and posting bob's lab id opens nothing (as for any lab that is not theirs, also for admins)."""
    lab = launched(explorer, "viewer", volumes=["GsscOpen"])
    assert wait_state(explorer, lab)["state"] == "running"
    resume = {"lab_id": lab, "id": GNSS}
    anonymous = browser(explorer)
    anonymous.cookies.clear()
    r = anonymous.get("/explorer/open/continue", params=resume, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    for name, role in (("eve", "user"), ("ada", "admin")):
        make_user(name, role=role)
        other = browser(explorer)
        other.cookies.clear()
        assert login(other, name).status_code == 303
        hidden = {"lab_id": lab, "id": "AstroSecret:jwst/secret_nircam.fits"}
        seen = other.get("/explorer/open/continue", params=hidden).status_code
        assert seen == (200 if role == "admin" else 404)  # administrators see every volume
        page = other.get("/explorer/open/continue", params=resume).text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = other.post("/explorer/open", data={**resume, "csrf_token": token})
        assert r.status_code == 404 and f"No lab '{lab}'" in text_of(r.text)
    assert not (explorer.app.state.settings.home / "workspaces" / "users" / "eve" / "from-explorer").exists()


def test_launch_buttons_are_disabled_at_the_running_limit(explorer):
    """Issue 15, Build 6: at the limit the dialog says why instead of offering a launch that fails."""
    assert 'name="datalab" value="viewer">Launch Viewer' in dialog(explorer).text
    first, second = launched(explorer, "fake"), launched(explorer, "fake")  # the limit is 2
    assert wait_state(explorer, first)["state"] == wait_state(explorer, second)["state"] == "running"
    page = dialog(explorer, **{"HX-Request": "true"}).text
    reason = "You have 2 of 2 labs running: stop one to launch another."
    assert f'<p class="help" id="open-launch-blocked">{reason}</p>' in page
    assert 'value="viewer" disabled aria-describedby="open-launch-blocked">Launch Viewer' in page
    r = submit(explorer, datalab="viewer")  # a stale dialog: the server refuses it all the same
    assert r.status_code == 429 and "stop one to launch another" in text_of(r.text)
