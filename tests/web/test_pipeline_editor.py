"""The pipeline editor in process against the real app: new and opened documents, validation as you type,
Push (first push registers, later ones publish versions, admins may push system pipelines), errors kept
in the form, and test runs of the draft through the real engine."""

from __future__ import annotations

import re
import time

import pytest

from datalabs.config import Settings
from datalabs.db.models import Pipeline, PipelineRun
from datalabs.pipelines.editor import draft_pipeline_name, next_version
from datalabs.workspaces import layout

COUNT = """cwlVersion: v1.2
class: CommandLineTool
label: Count lines
baseCommand: [wc, -l]
stdout: lines.txt
inputs:
  data: {type: File, inputBinding: {position: 1}, label: Text file}
outputs:
  lines: {type: stdout}
"""


@pytest.fixture
def settings(tmp_path, catalogue_dir) -> Settings:
    return Settings(
        home=tmp_path / "home",
        catalogue={"dirs": [catalogue_dir]},
        pipelines={"poll_interval": 0.2, "scheduler_interval": 3600},
    )


def push(client, post_form, data: dict, **kwargs):
    return post_form(client, "/pipelines/editor", "/pipelines/editor", data, **kwargs)


def details(**extra) -> dict:
    return {
        "cwl": COUNT,
        "filename": "count.cwl",
        "name": "count",
        "version": "1.0",
        "engine": "cwltool",
        **extra,
    }


def pipeline_row(client, name: str) -> Pipeline | None:
    with client.app.state.sessions() as db:
        row = db.query(Pipeline).filter_by(name=name).one_or_none()
        if row is not None:
            _ = [v.version for v in row.versions]
        return row


@pytest.mark.parametrize(
    ("old", "new"), [("1.0", "1.1"), ("v2", "v3"), ("2.0.9", "2.0.10"), ("beta", "beta.1")]
)
def test_next_version(old, new):
    assert next_version(old) == new


def test_draft_pipeline_names_are_valid_and_per_user():
    assert draft_pipeline_name("Bob", "My Tool") == "draft.bob.my-tool"
    assert len(draft_pipeline_name("u", "x" * 100)) == 64


def test_anonymous_is_sent_to_log_in(client):
    r = client.get("/pipelines/editor", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/pipelines/editor"


def test_new_document_validates_and_shows_graph_test_form_and_details(user):
    page = user.get("/pipelines/editor").text
    assert "<h1>New pipeline</h1>" in page and 'aria-current="page">Pipelines</a>' in page
    assert '<textarea id="cwl" name="cwl"' in page and 'hx-post="/pipelines/editor/validate"' in page
    assert "<strong>Valid CWL</strong> (CommandLineTool): 1 input, 1 output." in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="pipeline-graph"' in page
    assert 'id="f-message" name="in.message" value="hello"' in page  # the Test tab's generated form
    assert re.search(r'<pre class="gutter" id="cwl-gutter" aria-hidden="true">1\n2\n3\n', page)
    for tab in ("Graph", "Code", "Test", "Details"):
        assert f'aria-controls="panel-{tab.lower()}"' in page and f">{tab}</button>" in page
    assert 'id="system"' not in page  # system pipelines: administrators only
    for ident in re.findall(r'<(?:input|select|textarea)[^>]* id="([^"]+)"', page):
        assert f'for="{ident}"' in page, ident


def test_validation_as_you_type_names_the_line(user, csrf_from):
    token = csrf_from(user.get("/pipelines/editor").text)
    bad = "cwlVersion: v1.2\nclass: CommandLineTool\ninputs:\n  x: strin\noutputs: []\n"
    r = user.post(
        "/pipelines/editor/validate", data={"cwl": bad, "filename": "x.cwl"}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 200 and "Not valid yet." in r.text
    assert re.search(r"x\.cwl:4:\d+:.*unknown identifier &#39;strin&#39;", r.text)
    assert 'id="editor-graph" hx-swap-oob="true"' in r.text and "<svg" not in r.text
    r = user.post(
        "/pipelines/editor/validate",
        data={"cwl": "a: [", "filename": "x.cwl"},
        headers={"X-CSRF-Token": token},
    )
    assert "x.cwl:1:5: not valid YAML" in r.text
    typed = {"cwl": COUNT, "in.data": "me/typed.txt"}  # a value already in the Test tab stays there
    good = user.post("/pipelines/editor/validate", data=typed, headers={"X-CSRF-Token": token})
    assert "Valid CWL" in good.text and "<svg" in good.text
    assert 'name="in.data" value="me/typed.txt"' in good.text
    assert user.post("/pipelines/editor/validate", data={"cwl": COUNT}).status_code == 403  # no CSRF token


def test_push_registers_then_publishes_versions_and_keeps_errors_in_the_form(user, post_form):
    r = push(user, post_form, details(keywords="text, lines", description="Counts lines.", notes="First."))
    assert r.status_code == 200 and "Pipeline &#39;count&#39; registered." in r.text
    row = pipeline_row(user, "count")
    assert (
        row.keywords == ["lines", "text"] and not row.system and [v.version for v in row.versions] == ["1.0"]
    )
    # Same version again: refused next to the version field, with everything typed still there.
    again = push(user, post_form, details(cwl=COUNT + "# edited\n", notes="Kept notes"))
    assert again.status_code == 409
    assert re.search(
        r'id="version-error">Version &#39;1.0&#39; of &#39;count&#39; is already published', again.text
    )
    assert "# edited" in again.text and ">Kept notes</textarea>" in again.text
    r = push(user, post_form, details(cwl=COUNT + "# edited\n", version="1.1", notes="Second."))
    assert "Pipeline &#39;count&#39; version 1.1 pushed." in r.text
    assert [v.version for v in pipeline_row(user, "count").versions] == ["1.0", "1.1"]
    # Broken CWL is refused where the text is; a bad name and an unknown user where they are typed.
    broken = push(user, post_form, details(cwl="cwlVersion: v1.2\nclass: Nope\n", version="1.2"))
    assert broken.status_code == 422 and 'id="cwl-error"' in broken.text and "class: Nope" in broken.text
    named = push(user, post_form, details(name="Bad Name!"))
    assert named.status_code == 422 and 'id="name-error"' in named.text and 'value="Bad Name!"' in named.text
    reserved = push(user, post_form, details(name="editor"))  # /pipelines/editor is this page
    assert reserved.status_code == 422 and "ipeline name &#39;editor&#39; is reserved" in reserved.text
    users = push(user, post_form, details(name="other", allowed_users="ghost"))
    assert users.status_code == 422 and 'id="allowed_users-error"' in users.text and "ghost" in users.text
    assert pipeline_row(user, "other") is None


def test_only_admins_push_system_pipelines(user, make_user, login, post_form):
    refused = push(user, post_form, details(system="1"))
    assert refused.status_code == 403 and "nly administrators can register system pipelines" in refused.text
    assert pipeline_row(user, "count") is None
    # Someone else's private pipeline of the same name: the name is taken, nothing about it is shown.
    push(user, post_form, details(notes="Bob's"))
    make_user("root", role="admin")
    make_user("carol")
    post_form(user, "/pipelines", "/logout")
    login(user, "carol")
    taken = push(user, post_form, details(version="9.0"))
    assert taken.status_code == 409 and "already exists" in taken.text
    post_form(user, "/pipelines", "/logout")
    login(user, "root")
    assert 'id="system"' in user.get("/pipelines/editor").text
    r = push(user, post_form, details(name="count-sys", system="1"))
    assert "registered" in r.text and pipeline_row(user, "count-sys").system
    # Opening a system pipeline prefills its source, details and the next version.
    page = user.get("/pipelines/editor", params={"pipeline": "hello-world"}).text
    assert (
        'id="version" name="version" value="1.1"' in page
        and 'id="system" name="system" value="1" checked' in page
    )
    assert "Writes the given text as a framed banner" in page


def test_open_a_document_from_the_workspace(user, make_user, login, post_form):
    folder = layout.user_dir(user.app.state.settings, "bob") / "cwl"
    folder.mkdir()
    (folder / "Count-Lines.cwl").write_text(COUNT)
    # The file browser offers to edit CWL files.
    listing = user.get("/workspace/me/cwl/").text
    assert (
        '<a class="btn btn-small" href="/pipelines/editor?path=me/cwl/Count-Lines.cwl">Edit pipeline'
        in listing
    )
    page = user.get("/pipelines/editor", params={"path": "me/cwl/Count-Lines.cwl"}).text
    assert 'From <span class="mono">me/cwl/Count-Lines.cwl</span>' in page
    assert "label: Count lines" in page and 'id="name" name="name" value="count-lines"' in page
    assert 'id="filename" name="filename" value="Count-Lines.cwl"' in page
    assert user.get("/pipelines/editor", params={"path": "me/cwl/none.cwl"}).status_code == 404
    assert user.get("/pipelines/editor", params={"path": "/etc/passwd"}).status_code == 422
    make_user("carol")
    post_form(user, "/pipelines", "/logout")
    login(user, "carol")
    # Carol's "me" is her own workspace: bob's file is not there.
    assert user.get("/pipelines/editor", params={"path": "me/cwl/Count-Lines.cwl"}).status_code == 404


def test_test_tab_runs_the_draft_through_the_engine(user, csrf_from):
    layout.user_dir(user.app.state.settings, "bob").joinpath("three.txt").write_text("a\nb\nc\n")
    token = csrf_from(user.get("/pipelines/editor").text)
    data = {"cwl": COUNT, "filename": "count.cwl", "name": "count", "in.data": "me/three.txt"}
    r = user.post("/pipelines/editor/test", data=data, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and "Test run" in r.text, r.text
    run_id = re.search(r'href="/runs/([0-9a-f]+)"', r.text).group(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with user.app.state.sessions() as db:
            run = db.get(PipelineRun, run_id)
            if run.state in ("succeeded", "failed"):
                break
        time.sleep(0.1)
    assert run.state == "succeeded", run.reason
    assert "3" in user.get(f"/api/v1/workspaces/me/files/{run.outputs['lines']['location'][3:]}").text
    draft = pipeline_row(user, "draft.bob.count")
    assert draft is not None and not draft.system and draft.allowed_users == [] and draft.allowed_groups == []
    # The same text again reuses the draft version; a missing input is refused before anything is queued.
    user.post("/pipelines/editor/test", data=data, headers={"X-CSRF-Token": token})
    assert [v.version for v in pipeline_row(user, "draft.bob.count").versions] == ["draft-1"]
    r = user.post("/pipelines/editor/test", data={**data, "in.data": ""}, headers={"X-CSRF-Token": token})
    assert "The test could not start." in r.text and "Input &#39;data&#39; (File) is required." in r.text


def test_save_writes_the_text_into_the_workspace(user, post_form):
    edited = COUNT + "# saved from the editor\n"
    r = post_form(
        user,
        "/pipelines/editor",
        "/pipelines/editor/save",
        details(cwl=edited, path="me/cwl/count.cwl", notes="kept"),
    )
    assert r.status_code == 200 and "Saved to me/cwl/count.cwl." in r.text and ">kept</textarea>" in r.text
    saved = layout.user_dir(user.app.state.settings, "bob") / "cwl" / "count.cwl"
    assert saved.read_text() == edited
    assert (
        "# saved from the editor" in user.get("/pipelines/editor", params={"path": "me/cwl/count.cwl"}).text
    )
    for path, message in (
        ("", "give the file to save to"),
        ("volume:Archive/x.cwl", "data volumes are read-only"),
        ("team:nobody/x.cwl", "no team workspace"),
        ("me/../../x.cwl", "path"),
    ):
        r = post_form(user, "/pipelines/editor", "/pipelines/editor/save", details(cwl=edited, path=path))
        assert r.status_code in (404, 422) and 'id="path-error"' in r.text and message in r.text.lower(), path
        assert "# saved from the editor" in r.text  # the text is never lost
