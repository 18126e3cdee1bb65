"""The proxy's refusals as a browser gets them on a lab's own origin: a page that says why, with the way
back to the platform (not JSON); and, since a restarted lab keeps its id, its origin and lab cookie, the
same tab works again after a restart (issue 15, Build 6)."""

from __future__ import annotations

import time

import pytest

from tests.security.test_lab_origin import (
    HTML,
    PLATFORM,
    browser,
    enter,
    launch,
    origin,
    settings,  # noqa: F401 (the fake lab, origins on)
)


@pytest.fixture
def ada(people):
    people.user("ada")
    return browser(people, "ada")


def test_a_stopped_lab_tab_gets_a_page_and_works_again_after_a_restart(ada):
    lab_id = launch(ada)
    assert ada.get(enter(ada, lab_id)).status_code == 303  # the lab cookie is set for its origin
    page = f"{origin(lab_id)}/datalabs/{lab_id}/"
    assert ada.get(page).text == "fake lab ok"
    assert ada.post(f"/api/v1/labs/{lab_id}/stop", json={}).json()["state"] == "stopped"

    r = ada.get(page, headers=HTML)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), r.text
    assert f"No lab &#x27;{lab_id}&#x27;." in r.text
    assert f'<a href="{PLATFORM}/labs">Back to My datalabs</a>' in r.text
    api = ada.get(page, headers={"Accept": "application/json"})
    assert api.status_code == 404 and api.json()["error"]["code"] == "lab_not_found"

    assert ada.post(f"/api/v1/labs/{lab_id}/restart", json={}).status_code == 202
    launch_state = ada.get(f"/api/v1/labs/{lab_id}").json()
    assert launch_state["url"] == f"{origin(lab_id)}/datalabs/{lab_id}/"
    for _ in range(200):
        if ada.get(f"/api/v1/labs/{lab_id}").json()["state"] == "running":
            break
        time.sleep(0.05)
    assert ada.get(page, headers=HTML).text == "fake lab ok"  # the same tab, the same cookie
