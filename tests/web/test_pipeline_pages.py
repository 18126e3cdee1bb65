"""Pipeline and run pages in process against the real app: catalogue and filters, the pipeline page, the
launch form generated from CWL inputs and its errors, a real run (cwltool) followed to its outputs,
schedules, the file picker, and who may see what."""

from __future__ import annotations

import re
import time

import pytest

from datalabs import __version__
from datalabs.config import Settings
from datalabs.db.models import PipelineRun, PipelineSchedule
from datalabs.workspaces import layout

EVERY_TYPE = """cwlVersion: v1.2
class: CommandLineTool
label: Every type
doc: "Takes one of each <kind> of input."
baseCommand: echo
inputs:
  title: {type: string, label: Title of the report, doc: Shown at the top}
  count: {type: int, default: 3}
  ratio: {type: "double?"}
  loud: {type: boolean, default: true}
  mode: {type: {type: enum, symbols: [fast, exact]}, default: exact}
  data: {type: File, label: Data file}
  where: {type: "Directory?"}
outputs: []
"""
PRIVATE = """cwlVersion: v1.2
class: CommandLineTool
doc: secret tool
baseCommand: echo
inputs: []
outputs: []
"""


@pytest.fixture
def settings(tmp_path, catalogue_dir) -> Settings:
    return Settings(
        home=tmp_path / "home",
        catalogue={"dirs": [catalogue_dir]},
        pipelines={"poll_interval": 0.2, "scheduler_interval": 3600},
    )


def api_headers(client) -> dict[str, str]:
    """What the platform's pages send with cookie-authenticated API changes: the session's CSRF token."""
    return {"X-CSRF-Token": client.get("/api/v1/me").json()["csrf_token"]}


def register(client, name: str, cwl: str, **extra) -> None:
    body = {"name": name, "cwl": cwl, "filename": f"{name}.cwl", **extra}
    r = client.post("/api/v1/pipelines", json=body, headers=api_headers(client))
    assert r.status_code == 201, r.text


def switch(client, post_form, login, name: str) -> None:
    """Log out, then in as `name`."""
    post_form(client, "/pipelines", "/logout")
    assert login(client, name).status_code == 303


def card_names(html: str) -> list[str]:
    return re.findall(r'<li class="card pipeline-card" data-name="([^"]+)"', html)


def launch(client, post_form, name: str, data: dict, **kwargs):
    return post_form(client, f"/pipelines/{name}/launch", f"/pipelines/{name}/launch", data, **kwargs)


def runs_in_db(client) -> list[PipelineRun]:
    with client.app.state.sessions() as db:
        return list(db.query(PipelineRun))


def wait_state(client, run_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with client.app.state.sessions() as db:
            state = db.get(PipelineRun, run_id).state
        if state in ("succeeded", "failed", "cancelled"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {state}")


@pytest.mark.parametrize(
    "path", ["/pipelines", "/pipelines/hello-world", "/pipelines/hello-world/launch", "/runs"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"


@pytest.mark.parametrize(
    "path",
    ["/pipelines/hello-world/launch", "/pipelines/editor", "/pipelines/editor/validate", "/runs/x/cancel"],
)
def test_anonymous_posts_change_nothing(client, path):
    r = client.post(path, data={"in.text": "x", "cwl": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert runs_in_db(client) == []


def test_catalogue_search_and_filters(user, make_user, login, post_form):
    register(user, "bobs-tool", PRIVATE, keywords=["private", "text"], title="Bob's tool")
    page = user.get("/pipelines").text
    assert {"hello-world", "rinex-summary", "fits-thumbnail", "bobs-tool"} <= set(card_names(page))
    assert 'aria-current="page">Pipelines</a>' in page
    hello = re.search(r'data-name="hello-world".*?class="card-actions"', page, re.S).group(0)
    assert "Hello world banner" in hello and "v1.0" in hello and "cwltool" in hello and ">System<" in hello
    assert "Writes a text as a framed banner" in hello and '<a href="/pipelines?keyword=example"' in hello
    assert card_names(user.get("/pipelines", params={"q": "banner"}).text) == ["hello-world"]
    assert card_names(user.get("/pipelines", params={"source": "mine"}).text) == ["bobs-tool"]
    assert "bobs-tool" not in card_names(user.get("/pipelines", params={"source": "system"}).text)
    assert card_names(user.get("/pipelines", params={"keyword": "private"}).text) == ["bobs-tool"]
    # The live search swaps only the results (htmx), the full page otherwise.
    frag = user.get("/pipelines", params={"q": "banner"}, headers={"HX-Request": "true"})
    assert "<html" not in frag.text and card_names(frag.text) == ["hello-world"]
    # Shared with me: ada allows bob; bob sees it under "shared", not under "mine".
    make_user("ada")
    switch(user, post_form, login, "ada")
    register(user, "adas-tool", PRIVATE, allowed_users=["bob"])
    switch(user, post_form, login, "bob")
    assert card_names(user.get("/pipelines", params={"source": "shared"}).text) == ["adas-tool"]
    assert user.get("/pipelines", params={"source": "nobody"}).status_code == 422


def test_private_pipelines_are_invisible_to_others(user, make_user, login, post_form):
    register(user, "bobs-tool", PRIVATE)
    make_user("carol")
    switch(user, post_form, login, "carol")
    assert "bobs-tool" not in card_names(user.get("/pipelines").text)
    for path in ("", "/code", "/launch"):
        r = user.get(f"/pipelines/bobs-tool{path}")
        assert r.status_code == 404 and "pipeline &#39;bobs-tool&#39; available to you" in r.text
    r = post_form(user, "/pipelines", "/pipelines/bobs-tool/launch", {})
    assert r.status_code == 404 and runs_in_db(user) == []


def test_pipeline_page_graph_code_and_versions(user):
    register(user, "every", EVERY_TYPE, notes="First *cut*.")
    r = user.post(
        "/api/v1/pipelines/every/versions",
        json={"cwl": EVERY_TYPE.replace("Every type", "Every type 2"), "version": "2.0", "notes": "Second."},
        headers=api_headers(user),
    )
    assert r.status_code == 201, r.text
    page = user.get("/pipelines/every").text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="pipeline-graph"' in page
    assert "<title>input: title</title>" in page and "<title>step: Every type 2</title>" in page
    assert "Takes one of each &lt;kind&gt; of input." in page  # escaped, never markup
    assert '<a href="/pipelines/every?version=1.0"' in page and "<em>cut</em>" in page and "Second." in page
    old = user.get("/pipelines/every", params={"version": "1.0"}).text
    assert "You are looking at version 1.0" in old and "<title>step: Every type</title>" in old
    code = user.get("/pipelines/every/code").text
    assert (
        '<pre class="code-view"' in code and "doc: &#34;Takes one of each &lt;kind&gt; of input.&#34;" in code
    )
    assert user.get("/pipelines/every", params={"version": "9"}).status_code == 404


def test_launch_form_is_generated_from_the_inputs(user):
    register(user, "every", EVERY_TYPE)
    page = user.get("/pipelines/every/launch").text
    assert f"Datalabs {__version__} ·" in page  # the layout's own variables are not shadowed
    assert '<label for="f-title">Title of the report <span class="required">(required)</span></label>' in page
    assert '<input type="text" id="f-title" name="in.title" value=""' in page
    assert "Shown at the top" in page
    assert '<input type="number" id="f-count" name="in.count" value="3" step="1"' in page
    assert '<input type="number" id="f-ratio" name="in.ratio" value="" step="any"' in page
    assert '<label for="f-ratio">ratio</label>' in page  # optional: not marked required
    assert re.search(r'<input type="checkbox" id="f-loud" name="in.loud" value="true" checked', page)
    assert (
        '<option value="exact" selected>exact</option>' in page
        and '<option value="fast">fast</option>' in page
    )
    assert 'hx-get="/pipelines/-/files?target=f-data&amp;kind=File"' in page
    assert 'hx-get="/pipelines/-/files?target=f-where&amp;kind=Directory"' in page
    assert "the most recent missed time fires once" in page  # the stated missed-fire policy
    for label in (
        "Cron rule (UTC)",
        "When the run fails",
        "When it succeeds",
        "Webhook URL",
        "Outputs go to",
    ):
        assert label in page
    # Every input has a label pointing at it.
    for ident in re.findall(r'<(?:input|select|textarea)[^>]* id="([^"]+)"', page):
        assert f'for="{ident}"' in page, ident


def test_launch_errors_are_shown_next_to_the_fields_and_keep_what_was_typed(user, post_form):
    register(user, "every", EVERY_TYPE)
    typed = {
        "in.title": "My <report>",
        "in.count": "three",
        "in.data": "me/nothing.txt",
        "webhook": "https://x.example/h",
    }
    r = launch(user, post_form, "every", typed)
    assert r.status_code == 422
    assert re.search(
        r'id="f-count-error">Input &#39;count&#39;: &#39;three&#39; is not a whole number.<', r.text
    )
    assert 'id="f-count" name="in.count" value="three"' in r.text and 'value="My &lt;report&gt;"' in r.text
    assert "Notify: choose when to notify" in r.text and 'value="https://x.example/h"' in r.text
    # A file that does not exist: the run service's message, next to the file field.
    r = launch(user, post_form, "every", {"in.title": "t", "in.data": "me/nothing.txt"})
    assert r.status_code == 404 and 'id="f-data-error"' in r.text and "nothing.txt" in r.text
    assert 'value="me/nothing.txt"' in r.text
    # A host path is refused, and a missing required input is named.
    r = launch(user, post_form, "every", {"in.title": "t", "in.data": "/etc/passwd"})
    assert r.status_code == 422 and "is a host path" in r.text
    r = launch(user, post_form, "every", {"in.title": "t"})
    assert r.status_code == 422 and re.search(
        r'id="f-data-error">Input &#39;data&#39; \(File\) is required', r.text
    )
    # A bad cron rule, when scheduling.
    layout.user_dir(user.app.state.settings, "bob").joinpath("in.txt").write_text("x")
    r = launch(
        user,
        post_form,
        "every",
        {"in.title": "t", "in.data": "me/in.txt", "when": "schedule", "cron": "every day"},
    )
    assert r.status_code == 422 and 'id="cron-error"' in r.text and 'value="every day"' in r.text
    assert 'id="when-schedule" name="when" value="schedule" checked' in r.text
    assert runs_in_db(user) == []  # nothing was queued
    with user.app.state.sessions() as db:
        assert db.query(PipelineSchedule).count() == 0


def test_launch_hello_world_and_follow_the_run(user, make_user, login, post_form):
    r = launch(user, post_form, "hello-world", {"in.text": "From the form"}, follow_redirects=False)
    assert r.status_code == 303
    run_id = r.headers["location"].rsplit("/", 1)[1]
    assert r.headers["location"] == f"/runs/{run_id}"
    live = user.get(f"/runs/{run_id}").text
    assert f"Run {run_id} of hello-world queued." in live and "Hello world banner" in live
    assert wait_state(user, run_id) == "succeeded"
    page = user.get(f"/runs/{run_id}").text
    assert ">Succeeded</span>" in page and "| From the form |" in page
    assert "data-events" not in page and "Cancel run" not in page  # the run is over: nothing to follow
    params = user.get(f"/runs/{run_id}/parameters").text
    assert '<th scope="row" class="mono">text</th>' in params and "From the form" in params
    assert "<svg" in user.get(f"/runs/{run_id}/graph").text
    assert "baseCommand: [sh, -c]" in user.get(f"/runs/{run_id}/code").text
    outputs = user.get(f"/runs/{run_id}/outputs").text
    folder = f"/workspace/me/pipelines/hello-world/{run_id}/"
    assert f'href="{folder}"' in outputs
    assert f'href="/api/v1/workspaces/me/files/pipelines/hello-world/{run_id}/banner.txt"' in outputs
    assert "banner.txt" in user.get(folder).text
    listing = user.get("/runs").text
    assert f'<a class="mono" href="/runs/{run_id}">{run_id}</a>' in listing
    assert (
        f'data-run="{run_id}"'
        in user.get("/runs", params={"state": "succeeded", "pipeline": "hello-world"}).text
    )
    assert f'data-run="{run_id}"' not in user.get("/runs", params={"state": "failed"}).text
    # Another user is told the run does not exist; an admin sees it, and in the list of every user's runs.
    make_user("carol")
    switch(user, post_form, login, "carol")
    for tab in ("", "/parameters", "/outputs", "/logs-nope"):
        assert user.get(f"/runs/{run_id}{tab}").status_code == 404
    assert post_form(user, "/runs", f"/runs/{run_id}/cancel").status_code == 404
    assert f'data-run="{run_id}"' not in user.get("/runs", params={"all": "true"}).text
    make_user("root", role="admin")
    switch(user, post_form, login, "root")
    assert user.get(f"/runs/{run_id}").status_code == 200
    everyone = user.get("/runs", params={"all": "true"}).text
    assert f'data-run="{run_id}"' in everyone and "<td>bob</td>" in everyone
    # The admin's "me" is not bob's workspace: no link into it.
    assert f'href="{folder}"' not in user.get(f"/runs/{run_id}/outputs").text


def test_a_running_run_page_follows_the_log_and_can_be_cancelled(user, post_form):
    register(
        user,
        "sleepy",
        "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [sleep, '30']\ninputs: []\noutputs: []\n",
    )
    r = launch(user, post_form, "sleepy", {}, follow_redirects=False)
    run_id = r.headers["location"].rsplit("/", 1)[1]
    page = user.get(f"/runs/{run_id}").text
    assert re.search(rf'data-events="/api/v1/runs/{run_id}/logs\?follow=true&amp;offset=\d+"', page)
    assert "Cancel run" in page and "pipelines.js" in page
    # The run list refreshes itself while a run is active.
    assert 'hx-get="/runs" hx-trigger="every 3s"' in user.get("/runs").text
    r = post_form(user, f"/runs/{run_id}", f"/runs/{run_id}/cancel", follow_redirects=False)
    assert r.status_code == 303
    assert wait_state(user, run_id, timeout=90) == "cancelled"
    assert ">Cancelled</span>" in user.get(f"/runs/{run_id}").text
    assert "every 3s" not in user.get("/runs").text


def test_schedule_from_the_form(user, post_form, make_user, login):
    r = launch(
        user, post_form, "hello-world", {"in.text": "nightly", "when": "schedule", "cron": "0 3 * * *"}
    )
    assert r.status_code == 200 and "Schedule &#39;0 3 * * *&#39; created: first run" in r.text
    assert "Your schedules of this pipeline" in r.text and '<td class="mono">0 3 * * *</td>' in r.text
    assert runs_in_db(user) == []
    with user.app.state.sessions() as db:
        (schedule,) = db.query(PipelineSchedule).all()
        assert schedule.inputs == {"text": "nightly"} and schedule.version == ""
    action = f"/pipelines/hello-world/schedules/{schedule.id}/delete"
    # Another user neither sees nor deletes it; an admin sees whose it is.
    make_user("carol")
    switch(user, post_form, login, "carol")
    assert "0 3 * * *</td>" not in user.get("/pipelines/hello-world/launch").text
    assert post_form(user, "/pipelines/hello-world/launch", action).status_code == 404
    make_user("root", role="admin")
    switch(user, post_form, login, "root")
    admin_view = user.get("/pipelines/hello-world/launch").text
    assert "Schedules of this pipeline" in admin_view and "<td>bob</td>" in admin_view
    switch(user, post_form, login, "bob")
    r = post_form(user, "/pipelines/hello-world/launch", action)
    assert r.status_code == 200 and f"Schedule {schedule.id} deleted." in r.text


def test_file_picker_lists_workspaces_and_readable_volumes(user, settings):
    from datalabs.db.engine import transaction
    from datalabs.db.models import Volume

    archive = settings.home.parent / "archive"
    (archive / "2024").mkdir(parents=True)
    (archive / "2024" / "obs.rnx").write_text("x")
    secret = settings.home.parent / "secret"
    secret.mkdir()
    with transaction(user.app.state.sessions) as db:
        db.add(Volume(name="Archive", host_path=str(archive)))
        db.add(Volume(name="Secret", host_path=str(secret), allowed_groups=["nobody-here"]))
    (layout.user_dir(settings, "bob") / "data").mkdir()
    (layout.user_dir(settings, "bob") / "data" / "in.txt").write_text("x")
    top = user.get("/pipelines/-/files", params={"target": "f-data"}).text
    assert "My workspace" in top and "Data volume Archive" in top and "Secret" not in top
    inside = user.get("/pipelines/-/files", params={"target": "f-data", "ref": "me/data"}).text
    assert 'data-pick="me/data/in.txt" data-target="f-data"' in inside
    vol = user.get("/pipelines/-/files", params={"target": "f-data", "ref": "volume:Archive/2024"}).text
    assert 'data-pick="volume:Archive/2024/obs.rnx"' in vol
    folders = user.get(
        "/pipelines/-/files", params={"target": "f-where", "kind": "Directory", "ref": "me"}
    ).text
    assert (
        'data-pick="' not in folders and "Open folder data" in folders  # a space itself is no input folder
    )
    sub = user.get(
        "/pipelines/-/files", params={"target": "f-where", "kind": "Directory", "ref": "me/data"}
    ).text
    assert 'data-pick="me/data" data-target="f-where"' in sub and 'data-pick="me/data/in.txt"' not in sub
    denied = user.get("/pipelines/-/files", params={"target": "f-data", "ref": "volume:Secret"}).text
    assert "No data volume &#39;Secret&#39; available to you." in denied and 'data-pick="' not in denied
    escape = user.get("/pipelines/-/files", params={"target": "f-data", "ref": "me/../../etc"}).text
    assert 'data-pick="' not in escape and "My workspace" in escape


def test_a_failed_run_shows_its_reason_and_the_tools_stderr(user, post_form):
    failing = (
        "cwlVersion: v1.2\nclass: CommandLineTool\n"
        "baseCommand: [sh, -c, 'echo \"calibration table missing\" >&2; exit 3']\ninputs: []\noutputs: []\n"
    )
    register(user, "failing", failing)
    r = launch(user, post_form, "failing", {}, follow_redirects=False)
    run_id = r.headers["location"].rsplit("/", 1)[1]
    assert wait_state(user, run_id) == "failed"
    page = user.get(f"/runs/{run_id}").text
    assert "<h2>This run failed</h2>" in page and ">Failed</span>" in page
    assert "calibration table missing" in page
    outputs = user.get(f"/runs/{run_id}/outputs").text
    assert "This run has no outputs: it did not succeed." in outputs


def test_the_launch_form_offers_the_users_clusters_only_when_there_is_a_choice(user, post_form, settings):
    from datalabs.clusters.settings import ClusterSettings

    register(user, "quiet", PRIVATE)
    assert 'id="cluster"' not in user.get("/pipelines/quiet/launch").text  # one cluster: nothing to choose
    settings.clusters = [
        ClusterSettings(name="local", title="This server"),
        ClusterSettings(name="big", title="Big server"),
        ClusterSettings(name="astro-only", title="Astro's", allowed_groups=["astro"]),
    ]
    page = user.get("/pipelines/quiet/launch").text
    assert '<select id="cluster" name="cluster"' in page
    assert '<option value="local" selected>This server</option>' in page
    assert '<option value="big">Big server</option>' in page and "astro-only" not in page
    r = launch(user, post_form, "quiet", {"cluster": "big"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    (run,) = runs_in_db(user)
    assert run.cluster == "big"
    assert "<div><dt>Cluster</dt><dd>big</dd></div>" in user.get(f"/runs/{run.id}/parameters").text
    # Another group's cluster (or a forged name): refused next to the field, nothing queued.
    for name in ("astro-only", "big --partition=gpu"):
        r = launch(user, post_form, "quiet", {"cluster": name})
        assert r.status_code == 422
        assert re.search(
            r'id="cluster-error">No cluster named &#39;[^<]*&#39; \(yours: local, big\)', r.text
        ), r.text
        assert 'aria-describedby="cluster-help cluster-error"' in r.text  # the error is the select's
    assert len(runs_in_db(user)) == 1
