"""Restarting a stopped or failed lab from the pages: who may, when it is refused and why (split from
test_labs_pages.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datalabs.config import Settings
from tests.web.conftest import csrf_from
from tests.web.labs_support import browser, lab_settings, launched, text_of, wait_state


@pytest.fixture
def settings(tmp_path: Path, catalogue_dir: Path) -> Settings:
    return lab_settings(tmp_path, catalogue_dir)


# ---- launch --------------------------------------------------------------------------------------


def _stop(client, lab_id: str) -> None:
    page = client.get(f"/labs/{lab_id}").text
    r = client.post(f"/labs/{lab_id}/stop", data={"csrf_token": csrf_from(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert wait_state(client, lab_id, ("stopped",))["state"] == "stopped"


def _restart(client, lab_id: str, page: str = "/labs"):
    token = csrf_from(client.get(page).text)
    return client.post(
        f"/labs/{lab_id}/restart", data={"csrf_token": token, "next": page}, follow_redirects=False
    )


def test_restart_a_stopped_lab_from_my_datalabs(user):
    lab_id = launched(user, name="Notebook", cpu="1.5", memory="2G")
    wait_state(user, lab_id)
    _stop(user, lab_id)
    page = user.get("/labs").text
    card = page[page.index(f'data-lab="{lab_id}"') :]
    card = card[: card.index("</li>")]
    assert f'<form method="post" action="/labs/{lab_id}/restart"' in card
    assert 'aria-label="Restart Notebook">Restart</button>' in card  # not disabled: 0 of 2 running
    assert user.post(f"/labs/{lab_id}/restart", data={"next": "/labs"}).status_code == 403  # no CSRF token

    r = _restart(user, lab_id)
    assert r.status_code == 303 and r.headers["location"] == f"/labs/{lab_id}"
    assert wait_state(user, lab_id)["state"] == "running"
    after = user.get(f"/labs/{lab_id}").text
    assert "Restarting &#39;Notebook&#39;." in after and 'data-state="running"' in after
    assert "1.5 CPUs · 2.0 GB memory" in after
    # A double click: the second restart finds it running and says so where the button was.
    r = _restart(user, lab_id)
    assert r.status_code == 303 and r.headers["location"] == "/labs"
    assert (
        "&#39;Notebook&#39; is running: only a stopped or failed lab can be restarted."
        in user.get("/labs").text
    )
    assert [lab["id"] for lab in user.get("/api/v1/labs", headers={"Accept": "application/json"}).json()] == [
        lab_id
    ]


def test_restart_from_the_lab_page_of_a_failed_lab(user):
    lab_id = launched(user, "crashy")
    assert wait_state(user, lab_id)["state"] == "failed"
    page = user.get(f"/labs/{lab_id}").text
    assert f'action="/labs/{lab_id}/restart"' in page and "then restart it below" in text_of(page)
    r = _restart(user, lab_id, f"/labs/{lab_id}")
    assert r.status_code == 303 and r.headers["location"] == f"/labs/{lab_id}"
    assert wait_state(user, lab_id)["state"] == "failed"  # it crashes again, on purpose
    logs = user.get(f"/labs/{lab_id}/logs").text
    output = logs[logs.index('<pre class="log-output"') : logs.index("</pre>")]
    assert output.count("fake lab crashed on purpose") == 2 and "---- restarted at" in output


def test_restart_at_the_limit_is_disabled_with_the_reason(user):
    stopped = launched(user)
    wait_state(user, stopped)
    _stop(user, stopped)
    launched(user), launched(user)  # two running: the limit
    page = user.get("/labs").text
    assert re.search(
        rf'aria-label="Restart Fake Lab" disabled aria-describedby="restart-blocked-{stopped}">Restart<',
        page,
    )
    reason = "You have 2 of 2 labs running: stop one to launch another."
    assert f'<p class="help lab-blocked" id="restart-blocked-{stopped}">{reason}</p>' in page
    assert reason in text_of(user.get(f"/labs/{stopped}").text)
    # The server refuses it anyway (a stale page, a crafted request), and the lab stays as it was.
    r = _restart(user, stopped)
    assert r.status_code == 303 and r.headers["location"] == "/labs"
    assert "You already have 2 datalab(s) running" in text_of(user.get("/labs").text)
    assert wait_state(user, stopped, ("stopped",))["reason"] == "stopped by its owner"


def test_restart_refused_once_the_version_left_the_catalogue(user, client, settings):
    lab_id = launched(user, version="0.9")
    wait_state(user, lab_id)
    _stop(user, lab_id)
    version = settings.catalogue.dirs[0] / "fake" / "versions" / "0.9"
    (version / "datalab-meta.yml").unlink()
    version.rmdir()
    from datalabs.catalogue import service as catalogue_service
    from datalabs.db.engine import transaction

    with transaction(client.app.state.sessions) as db:
        catalogue_service.reload(db, settings)
    r = _restart(user, lab_id, f"/labs/{lab_id}")
    assert r.status_code == 303 and r.headers["location"] == f"/labs/{lab_id}"
    page = text_of(user.get(f"/labs/{lab_id}").text)
    assert "version 0.9 of datalab 'fake' is no longer in the catalogue; launch a current version" in page
    assert wait_state(user, lab_id, ("stopped",))["state"] == "stopped"


def test_restart_is_for_the_owner_only(client, make_user, login, user):
    lab_id = launched(user, name="Bob's lab")
    wait_state(user, lab_id)
    _stop(user, lab_id)
    make_user("eve")
    make_user("ada", role="admin")
    eve, ada = browser(client), browser(client)
    assert login(eve, "eve").status_code == 303 and login(ada, "ada").status_code == 303
    token = csrf_from(eve.get("/labs").text)
    r = eve.post(f"/labs/{lab_id}/restart", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 404 and "Not found" in r.text
    # An administrator sees the lab but no Restart: it would run as bob.
    everyone = ada.get("/labs?all=1").text
    assert f'data-lab="{lab_id}"' in everyone and f'action="/labs/{lab_id}/restart"' not in everyone
    r = _restart(ada, lab_id, "/labs?all=1")
    assert r.status_code == 303 and r.headers["location"] == "/labs?all=1"
    said = text_of(ada.get("/labs?all=1").text)
    assert "Only bob can restart 'Bob's lab': a lab runs as its owner." in said
    anonymous = browser(client)
    r = anonymous.post(f"/labs/{lab_id}/restart", data={}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert wait_state(user, lab_id, ("stopped",))["state"] == "stopped"


# ---- logs ----------------------------------------------------------------------------------------
