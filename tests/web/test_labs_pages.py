"""The labs pages in process with the fake runtime: launch form and its errors, the start page, My datalabs
(stop, destroy, admins' view of all labs), logs, and who may see what."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest

from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings
from tests.web.conftest import csrf_from
from tests.web.labs_support import browser, lab_settings, launch, launched, text_of, wait_state
from tests.web.test_lab_restart_pages import _stop


@pytest.fixture
def settings(tmp_path: Path, catalogue_dir: Path) -> Settings:
    return lab_settings(tmp_path, catalogue_dir)


# ---- launch --------------------------------------------------------------------------------------


def test_launch_form_only_for_available_datalabs(user, client):
    cards = user.get("/catalogue").text
    assert 'href="/catalogue/fake/launch">Launch</a>' in cards
    assert "/catalogue/oddlab/launch" not in cards  # its tool is missing
    assert 'href="/catalogue/fake/launch">Launch Fake Lab</a>' in user.get("/catalogue/fake").text
    older = user.get("/catalogue/fake", params={"version": "0.9"}).text
    assert 'href="/catalogue/fake/launch?version=0.9"' in older
    assert "/launch" not in user.get("/catalogue/oddlab").text

    form = user.get("/catalogue/fake/launch")
    assert form.status_code == 200
    page = form.text
    assert '<form method="post" action="/catalogue/fake/launch"' in page
    assert "<summary>Advanced configuration</summary>" in page and '<details class="advanced">' in page
    assert (
        '<option value="1.0" selected>1.0 (latest)</option>' in page
        and '<option value="0.9">0.9</option>' in page
    )
    assert re.search(r'name="cpu" type="number"[^>]* step="0.5" min="0.5" max="2" value="1"', page)
    assert re.search(r'name="memory" type="text"[^>]* value="1G"', page) and "maximum 4G" in page
    assert "No data volumes are available yet" in page
    assert '<option value="0.9" selected>' in user.get("/catalogue/fake/launch?version=0.9").text

    unavailable = user.get("/catalogue/oddlab/launch")
    assert unavailable.status_code == 409
    assert '<form method="post" action="/catalogue/oddlab/launch"' not in unavailable.text
    assert "cannot be launched here yet" in unavailable.text
    assert user.get("/catalogue/nope/launch").status_code == 404
    assert user.get("/catalogue/fake/launch?version=7").status_code == 404

    anonymous = browser(client)
    r = anonymous.get("/catalogue/fake/launch", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/catalogue/fake/launch"


def test_launch_needs_the_csrf_token(user):
    r = user.post("/catalogue/fake/launch", data={"cpu": "1"}, follow_redirects=False)
    assert r.status_code == 403 and "security token" in r.text
    assert user.get("/api/v1/labs").json() == []


def test_launch_errors_keep_the_fields(user):
    r = launch(user, name="My big lab", version="1.0", cpu="3", memory="3G")
    assert r.status_code == 422
    page = text_of(r.text)
    assert "CPU request exceeds this datalab's maximum of 2." in page
    assert 'value="My big lab"' in r.text and 'value="3"' in r.text and 'value="3G"' in r.text
    assert '<details class="advanced" open>' in r.text  # where the message and the field are
    assert re.search(r'id="lab-cpu"[^>]*aria-invalid="true"', r.text)
    assert re.search(r'<p class="form-error" role="alert" id="lab-cpu-error">CPU request exceeds', r.text)

    r = launch(user, cpu="1", memory="64G")
    assert r.status_code == 422 and "Memory request exceeds this datalab's maximum of 4G." in text_of(r.text)
    r = launch(user, cpu="lots", memory="heaps")
    assert r.status_code == 422
    page = text_of(r.text)
    assert "CPU must be a number above 0" in page and "'heaps' is not a memory size" in page
    assert 'value="lots"' in r.text and 'value="heaps"' in r.text and 'aria-invalid="true"' in r.text
    assert user.get("/api/v1/labs").json() == []


def test_launch_follows_the_start_and_opens_the_lab(user):
    lab_id = launched(user, name="Analysis", cpu="1.5", memory="2G")
    wait_state(user, lab_id)
    # Just launched and already up: the page says so and (with JavaScript) opens the lab at once...
    first = user.get(f"/labs/{lab_id}").text
    assert "You launched &#39;Analysis&#39;." in first
    assert f'data-auto-open="/datalabs/{lab_id}/"' in first and "/static/labs.js" in first
    # ...but only once: coming back to the page later does not bounce to the lab again.
    r = user.get(f"/labs/{lab_id}")
    page = r.text
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert "data-auto-open" not in page and "/static/labs.js" not in page and "You launched" not in page
    assert 'data-state="running"' in page and ">Running</span>" in page
    # The lab opens in a new tab: the platform's tab stays, to come back to and stop it.
    assert (
        f'<a class="btn btn-primary btn-large" href="/datalabs/{lab_id}/" target="_blank" rel="noopener">'
        "Open Analysis</a>" in page
    )
    assert "It opens in a new tab" in page
    assert 'http-equiv="refresh"' not in page and "<progress" not in page
    assert "1.5 CPUs · 2.0 GB memory" in page and "Fake Lab" in page
    # The header offers a switch to it from any page.
    header = user.get("/catalogue").text
    assert "Running labs" in header
    assert f'<a href="/datalabs/{lab_id}/" target="_blank" rel="noopener">Analysis</a>' in header

    logs = user.get(f"/labs/{lab_id}/logs")
    assert logs.status_code == 200 and re.search(r'<pre class="log-output"[^>]*>[^<]*serving on', logs.text)
    assert f'href="/labs/{lab_id}/logs#log-end">Refresh</a>' in logs.text


def test_starting_lab_shows_progress_and_refreshes_without_js(user):
    lab_id = launched(user, "slow")
    wait_state(user, lab_id, ("starting",))
    # Right after the launch the page will take the tab into the lab once it is ready...
    first = user.get(f"/labs/{lab_id}").text
    assert f'data-open="/datalabs/{lab_id}/"' in first and "opens the lab when it is ready" in first
    for _ in range(100):  # the fake runtime's first message arrives right after the state change
        page = user.get(f"/labs/{lab_id}").text
        if "Starting fake lab" in page:
            break
        time.sleep(0.05)
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
    assert re.search(r'<progress id="progress-bar" max="100" value="10"', page)
    assert "<li>Queued</li>" in page and "<li>Starting fake lab</li>" in page
    # ...a later visit follows the start too, but stays: the running page offers Open (a new tab).
    assert f'data-events="/api/v1/labs/{lab_id}/events"' in page and "data-open=" not in page
    assert re.search(r'<script src="/static/labs.js\?v=[0-9a-f]+" defer>', page)
    assert user.get("/static/labs.js").status_code == 200
    assert ">Open" not in page
    # My datalabs shows it as starting, with Stop but no Open.
    labs = user.get("/labs").text
    assert 'data-state="starting"' in labs and 'aria-label="Open Slow Lab"' not in labs
    r = user.post(
        f"/labs/{lab_id}/stop",
        data={"csrf_token": csrf_from(labs), "next": f"/labs/{lab_id}"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/labs/{lab_id}"
    stopped = user.get(f"/labs/{lab_id}").text
    assert "This lab is stopped." in stopped and "http-equiv" not in stopped and "<progress" not in stopped


def test_crash_shows_the_reason_and_the_logs(user):
    lab_id = launched(user, "crashy")
    assert wait_state(user, lab_id)["state"] == "failed"
    page = user.get(f"/labs/{lab_id}").text
    box = text_of(page[page.index('class="failure-box"') :])
    assert 'role="alert"' in page and "This lab failed to start" in box
    assert "The lab exited with code 3 while starting: fake lab crashed on purpose." in box
    assert f'href="/labs/{lab_id}/logs">Read the lab' in page
    assert "<progress" not in page and "http-equiv" not in page and "/static/labs.js" not in page
    assert "fake lab crashed on purpose" in user.get(f"/labs/{lab_id}/logs").text
    card = text_of(user.get("/labs").text)
    assert "Recently ended" in card and "Failed: The lab exited with code 3" in card


# ---- My datalabs ---------------------------------------------------------------------------------


def test_my_datalabs_lists_labs_with_actions_stop_and_destroy(user):
    empty = user.get("/labs")
    assert empty.status_code == 200 and "No datalab is running for you." in empty.text
    assert "not available yet" not in empty.text and 'href="/labs" aria-current="page"' in empty.text
    lab_id = launched(user, name="Notebook")
    wait_state(user, lab_id)
    page = user.get("/labs").text
    card = page[page.index(f'data-lab="{lab_id}"') : page.index("</li>", page.index(f'data-lab="{lab_id}"'))]
    for text in (
        ">Running</span>",
        f'href="/labs/{lab_id}">Notebook</a>',
        'href="/catalogue/fake">Fake Lab</a>',
        "v1.0",
        "1 CPU · 1.0 GB memory",
        f'href="/datalabs/{lab_id}/" target="_blank" rel="noopener" aria-label="Open Notebook (new tab)">',
        f'href="/labs/{lab_id}/logs"',
        f'action="/labs/{lab_id}/stop"',
        f'href="/labs/{lab_id}/destroy?next=/labs"',
    ):
        assert text in card, text
    assert re.search(r'<time datetime="[^"]+" title="[^"]+ UTC">started (just now|1 minute ago)</time>', card)
    assert "1 of 2 datalabs in use" in page
    assert "Owner" not in card  # only in the admins' view of all labs

    r = user.post(f"/labs/{lab_id}/stop", data={"next": "/labs"}, follow_redirects=False)
    assert r.status_code == 403
    r = user.post(
        f"/labs/{lab_id}/stop", data={"csrf_token": csrf_from(page), "next": "/labs"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/labs"
    after = user.get("/labs").text
    assert "&#39;Notebook&#39; stopped." in after and "No datalab is running for you." in after
    ended = text_of(after[after.index('id="h-ended"') :])
    assert "Stopped" in ended and "Stopped by its owner." in ended and "ended just now" in ended
    assert f'action="/labs/{lab_id}/stop"' not in after and "Running labs" not in after

    confirm = user.get(f"/labs/{lab_id}/destroy?next=/labs")
    assert confirm.status_code == 200 and "Destroy the lab “Notebook”?" in confirm.text
    assert f'<form method="post" action="/labs/{lab_id}/destroy"' in confirm.text
    assert user.post(f"/labs/{lab_id}/destroy", data={"next": "/labs"}).status_code == 403
    r = user.post(
        f"/labs/{lab_id}/destroy",
        data={"csrf_token": csrf_from(confirm.text), "next": "/labs"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/labs"
    assert "destroyed" in user.get("/labs").text
    assert user.get(f"/labs/{lab_id}").status_code == 404


def test_destroying_a_running_lab_from_its_page(user):
    lab_id = launched(user)
    wait_state(user, lab_id)
    page = user.get(f"/labs/{lab_id}").text
    assert f'href="/labs/{lab_id}/destroy?next=/labs/{lab_id}"' in page
    confirm = user.get(f"/labs/{lab_id}/destroy?next=/labs/{lab_id}").text
    assert (
        "will be stopped first" in confirm and f'<a class="btn" href="/labs/{lab_id}">Cancel</a>' in confirm
    )
    r = user.post(
        f"/labs/{lab_id}/destroy",
        data={"csrf_token": csrf_from(confirm), "next": "/labs"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/labs"
    assert user.get("/api/v1/labs").json() == []


def test_third_launch_shows_the_limit_on_the_form(user):
    first, second = launched(user), launched(user)
    r = launch(user, name="One too many", cpu="1", memory="1G")
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    page = text_of(r.text)
    assert "You already have 2 datalab(s) running" in page and "stop one to launch another" in page
    assert (
        'value="One too many"' in r.text and '<p class="form-error" role="alert" id="launch-error">' in r.text
    )
    assert {lab["id"] for lab in user.get("/api/v1/labs").json()} == {first, second}
    # The form says so up front, too, and its Launch button is disabled (the server refuses anyway).
    form = user.get("/catalogue/fake/launch").text
    assert "You have 2 of 2 labs running: stop one to launch another." in text_of(form)
    assert re.search(
        r'<button type="submit" class="btn btn-primary btn-large" disabled '
        r'aria-describedby="launch-blocked">Launch</button>',
        form,
    )


# ---- who sees what -------------------------------------------------------------------------------


def test_other_users_get_404_and_anonymous_visitors_the_login(client, make_user, login, user):
    lab_id = launched(user)
    wait_state(user, lab_id)
    make_user("eve")
    eve = browser(client)
    assert login(eve, "eve").status_code == 303
    for path in (f"/labs/{lab_id}", f"/labs/{lab_id}/logs", f"/labs/{lab_id}/destroy"):
        r = eve.get(path)
        assert r.status_code == 404 and "Not found" in r.text, path
    token = csrf_from(eve.get("/labs").text)
    for action in ("stop", "destroy"):
        r = eve.post(f"/labs/{lab_id}/{action}", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 404, action
    assert lab_id not in eve.get("/labs").text and lab_id not in eve.get("/labs?all=1").text
    assert wait_state(user, lab_id)["state"] == "running"

    anonymous = browser(client)
    for path in ("/labs", f"/labs/{lab_id}", f"/labs/{lab_id}/logs"):
        r = anonymous.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}", path


def test_admin_sees_all_users_labs_and_may_stop_them(client, make_user, login, user):
    lab_id = launched(user, name="Bob's lab")
    wait_state(user, lab_id)
    make_user("ada", role="admin")
    ada = browser(client)
    assert login(ada, "ada").status_code == 303
    mine = ada.get("/labs").text
    assert lab_id not in mine and 'href="/labs?all=1">All users\' labs</a>' in mine
    everyone = ada.get("/labs?all=1").text
    assert f'data-lab="{lab_id}"' in everyone and '<dd class="lab-owner">bob</dd>' in everyone
    assert "<h1>All users&#39; datalabs</h1>" in everyone
    assert "owned by <strong>bob</strong>" in ada.get(f"/labs/{lab_id}").text
    r = ada.post(
        f"/labs/{lab_id}/stop",
        data={"csrf_token": csrf_from(everyone), "next": "/labs?all=1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/labs?all=1"
    assert "Stopped by administrator ada." in text_of(ada.get("/labs?all=1").text)
    assert "Stopped by administrator ada." in text_of(user.get("/labs").text)
    # A user asking for everyone's labs just gets their own.
    assert "<h1>My datalabs</h1>" in user.get("/labs?all=1").text


def test_logs_follow_the_lab_while_it_runs_and_stop_when_it_ended(user):
    lab_id = launched(user)
    wait_state(user, lab_id)
    page = user.get(f"/labs/{lab_id}/logs").text
    assert re.search(rf'<section id="lab-log"[^>]*hx-get="/labs/{lab_id}/logs" hx-trigger="every 2s"', page)
    assert "The log follows the lab live." in text_of(page) and "/static/labs.js" in page
    part = user.get(f"/labs/{lab_id}/logs", headers={"HX-Request": "true"})
    assert part.status_code == 200 and part.text.lstrip().startswith('<section id="lab-log"')
    assert "<html" not in part.text
    assert "serving on" in part.text and part.headers["cache-control"] == "no-store"
    # New output shows up in the next poll, newest last.
    log = Path(user.app.state.settings.home / "labs" / lab_id / "lab.log")
    with log.open("a") as f:
        f.write("".join(f"line {n}\n" for n in range(2000)))
    part = user.get(f"/labs/{lab_id}/logs", headers={"HX-Request": "true"}).text
    assert "line 1999<" in part and "line 1500\n" in part and "line 1499\n" not in part  # the latest 500
    assert part.index("line 1998") < part.index("line 1999")
    _stop(user, lab_id)
    ended = user.get(f"/labs/{lab_id}/logs", headers={"HX-Request": "true"}).text
    assert "hx-trigger" not in ended and "this is the end of its log" in ended
    assert "hx-trigger" not in user.get(f"/labs/{lab_id}/logs").text


@pytest.mark.parametrize("shape", ["sparse", "one-line"])
def test_a_huge_log_costs_no_more_than_its_end(user, shape):
    """Hostile: a lab writes hundreds of MB of log (or one line of 100 MB without a newline); the page
    reads only the file's end, so it stays small and takes little memory to make."""
    import tracemalloc

    lab_id = launched(user)
    wait_state(user, lab_id)
    _stop(user, lab_id)
    log = Path(user.app.state.settings.home / "labs" / lab_id / "lab.log")
    with log.open("r+b") as f:
        if shape == "sparse":  # 400 MB of holes, then the lab's last words
            f.truncate(400 * 2**20)
            f.seek(0, 2)
            f.write(b"the very last line\n")
        else:  # 100 MB, not one newline
            f.seek(0)
            f.truncate(0)
            f.write(b"x" * 2**20)
            f.truncate(100 * 2**20)
            f.seek(0, 2)
            f.write(b"END-OF-THE-ONE-LINE")
    tracemalloc.start()
    try:
        r = user.get(f"/labs/{lab_id}/logs")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 200
    assert peak < 16 * 2**20, peak  # a whole-file read would be 100-400 MB
    assert len(r.content) < 2 * 2**20
    assert ("the very last line" if shape == "sparse" else "END-OF-THE-ONE-LINE") in r.text
    assert "\x00" not in r.text


# ---- opening labs --------------------------------------------------------------------------------


def test_no_open_for_an_admin_on_another_users_lab_and_a_page_from_the_proxy(client, make_user, login, user):
    lab_id = launched(user, name="Bob's lab")
    wait_state(user, lab_id)
    make_user("ada", role="admin")
    ada = browser(client)
    assert login(ada, "ada").status_code == 303
    everyone = ada.get("/labs?all=1").text
    assert f'href="/datalabs/{lab_id}/"' not in everyone and "Only bob can open this lab." in everyone
    page = ada.get(f"/labs/{lab_id}").text
    assert f'href="/datalabs/{lab_id}/"' not in page and "Only bob can open it" in page
    # Following an old link anyway: an HTML page that says why, not the proxy's JSON.
    r = ada.get(f"/datalabs/{lab_id}/", follow_redirects=False)  # as for no lab at all (issue 19)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), r.text
    assert f"No lab '{lab_id}'" in html.unescape(r.text) and 'href="/labs"' in r.text
    api = ada.get(f"/datalabs/{lab_id}/", headers={"Accept": "application/json"}, follow_redirects=False)
    assert api.status_code == 404 and api.json()["error"]["code"] == "lab_not_found"
    gone = ada.get("/datalabs/0123456789abcdef/", follow_redirects=False)
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("text/html")
    assert "&lt;" not in r.text.split("<p>")[0]  # the page is markup, the message escaped inside it


def test_the_launch_form_offers_the_users_clusters_and_refuses_others(user, settings):
    settings.clusters = [
        ClusterSettings(name="local", title="This server"),
        ClusterSettings(
            name="small", title="Small nodes", description="One CPU each.",
            resources={"default": {"cpu": 1}, "maximum": {"cpu": 1, "memory": "2G"}},
        ),
        ClusterSettings(name="secret", title="Team nodes", allowed_groups=["astro"]),
    ]  # fmt: skip
    form = user.get("/catalogue/fake/launch").text
    assert re.search(r'type="radio" id="cluster-1" name="cluster" value="local" checked', form)
    assert 'value="small"' in form and "One CPU each." in form and "starts right away" in text_of(form)
    assert "secret" not in form and "Team nodes" not in form  # another group's: not even named

    r = launch(user, cluster="small", cpu="2")
    assert r.status_code == 422, r.text
    assert "CPU request exceeds the Small nodes cluster's maximum of 1." in text_of(r.text)
    assert re.search(r'value="small" checked', r.text)  # the choice is kept
    for hostile in ("secret", "small --wrap=id", "../local", "x" * 64):
        r = launch(user, cluster=hostile)
        assert r.status_code == 422, hostile
        assert "No cluster named" in text_of(r.text) and "(yours: local, small)" in text_of(r.text)
        assert 'id="lab-cluster-error"' in r.text
    assert user.get("/api/v1/labs").json() == []

    lab_id = launched(user, cluster="small")
    lab = wait_state(user, lab_id)
    assert (lab["state"], lab["cluster"], lab["resources"]["cpu"]) == ("running", "small", 1)
    assert "Small nodes" in text_of(user.get("/labs").text)  # My datalabs says where it runs
