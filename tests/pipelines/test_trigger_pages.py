"""Trigger pages (web/trigger_pages.py): the Triggers section of a pipeline's page (create, pause, resume,
test, delete; a webhook's secret shown once), the explorer's "Run a pipeline on new matches", and the run
page's "Started by" and chain stop reason. Other users cannot see or act on a trigger."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from datalabs.config import Settings
from datalabs.db.models import PipelineRun, PipelineTrigger
from tests.pipelines.conftest import COUNT, HELLO, register

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@pytest.fixture
def settings(tmp_path, db_url):
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        server={"roles": ["api", "proxy"]},
        pipelines={"worker": False},
    )


def _post(client, page: str, action: str, data: dict):
    token = CSRF.search(client.get(page).text).group(1)
    return client.post(action, data={**data, "csrf_token": token}, follow_redirects=False)


def _count(app, model) -> int:
    with app.state.sessions() as db:
        return db.scalar(select(func.count()).select_from(model))


def test_the_triggers_section_of_a_pipeline_page(app, people):
    people.user("ada")
    people.user("bob")
    ada, bob = people.login("ada"), people.login("bob")
    register(ada, "hello", HELLO, allowed_users=["bob"])
    page = ada.get("/pipelines/hello")
    assert page.status_code == 200 and 'id="triggers"' in page.text and "No triggers of yours" in page.text
    made = _post(ada, "/pipelines/hello", "/pipelines/hello/triggers", {"kind": "webhook", "name": "station"})
    assert made.status_code == 200 and 'id="new-secret"' in made.text
    with app.state.sessions() as db:
        trigger = db.scalars(select(PipelineTrigger)).one()
    assert trigger.secret in made.text  # shown this once...
    again = ada.get("/pipelines/hello")
    assert trigger.secret not in again.text and "station" in again.text  # ...and never again
    assert f"/api/v1/triggers/{trigger.id}/hook" in again.text
    # Bob sees the pipeline, not ada's trigger, and cannot act on it.
    assert "station" not in bob.get("/pipelines/hello").text
    for action in ("pause", "test", "delete"):
        r = _post(bob, "/pipelines/hello", f"/pipelines/hello/triggers/{trigger.id}/{action}", {})
        assert r.status_code in (303, 404), r.text
        if r.status_code == 303:
            assert "/runs/" not in r.headers["location"]
    assert _count(app, PipelineRun) == 0 and _count(app, PipelineTrigger) == 1
    base = f"/pipelines/hello/triggers/{trigger.id}"
    assert _post(ada, "/pipelines/hello", f"{base}/pause", {}).status_code == 303
    assert "Paused" in ada.get("/pipelines/hello").text
    assert _post(ada, "/pipelines/hello", f"{base}/resume", {}).status_code == 303
    tested = _post(ada, "/pipelines/hello", f"{base}/test", {})
    assert tested.status_code == 303 and tested.headers["location"].startswith("/runs/")
    run_page = ada.get(tested.headers["location"])
    assert 'id="run-trigger"' in run_page.text and "a test by ada" in run_page.text
    assert _post(ada, "/pipelines/hello", f"{base}/delete", {}).status_code == 303
    assert _count(app, PipelineTrigger) == 0
    # A refused trigger says why and makes nothing.
    bad = _post(
        ada, "/pipelines/hello", "/pipelines/hello/triggers", {"kind": "run_finished", "after": "nope"}
    )
    assert bad.status_code == 303 and _count(app, PipelineTrigger) == 0
    assert "No trigger created" in ada.get(bad.headers["location"]).text


def test_a_new_data_trigger_from_the_explorers_search(app, people):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "count", COUNT)
    register(ada, "hello", HELLO)  # no File input: not offered
    explorer = ada.get("/explorer?q=obs&dataset=gnss")
    link = re.search(r'id="new-data-trigger" href="([^"]+)"', explorer.text).group(1).replace("&amp;", "&")
    assert "q=obs" in link and "dataset=gnss" in link
    page = ada.get(link)
    assert page.status_code == 200 and '<option value="count"' in page.text
    assert '<option value="hello"' not in page.text
    # The page says what of the search applies to a watched folder's files: the words only.
    assert "only the search's <strong>words</strong> apply" in page.text
    assert "<strong>not applied</strong>" in page.text
    (app.state.settings.home / "workspaces" / "users" / "ada" / "incoming").mkdir(parents=True)
    search = re.search(r'name="search" value="([^"]+)"', page.text).group(1).replace("&#34;", '"')
    form = {"pipeline": "count", "watch": "me/incoming", "search": search, "mode": "per_file"}
    r = _post(ada, link, "/pipelines/-/new-data-trigger", form)
    assert r.status_code == 303 and r.headers["location"] == "/pipelines/count#triggers", r.text
    with app.state.sessions() as db:
        trigger = db.scalars(select(PipelineTrigger)).one()
        assert trigger.kind == "new_data" and trigger.config["watch"] == "me/incoming"
        assert trigger.config["search"] == {"q": "obs", "facets": {"dataset": ["gnss"]}}
    # A folder that is not hers is refused.
    r = _post(ada, link, "/pipelines/-/new-data-trigger", {"pipeline": "count", "watch": "me/../bob"})
    assert r.status_code == 303 and r.headers["location"] == "/explorer"
    assert _count(app, PipelineTrigger) == 1
    # No folder: the whole search, on the index's new matches; the Triggers section says which applies.
    r = _post(ada, link, "/pipelines/-/new-data-trigger", {**form, "watch": ""})
    assert r.status_code == 303 and r.headers["location"] == "/pipelines/count#triggers", r.text
    section = ada.get("/pipelines/count").text
    assert "(the index's matches)" in section
    assert section.count("(its words only)") == 1
    assert section.count("new matches in the asset index") == 1
    # Neither a folder nor a search: refused.
    r = _post(ada, link, "/pipelines/-/new-data-trigger", {"pipeline": "count", "watch": "", "search": "{}"})
    assert r.status_code == 303 and r.headers["location"] == "/explorer"
    assert _count(app, PipelineTrigger) == 2
