"""The app store pages in process against the real app: the Create datalab wizard with real builds (uv in
bubblewrap, a local wheel, no network), the app page's sharing, submission and history, the moderators'
queue, and who may see what. Labs of built versions run on the fake runtime (their metadata says so)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from datalabs.builder.drafts import draft_dir
from datalabs.config import Settings
from tests.builder.support import evil_zip, make_sources
from tests.web.conftest import PASSWORD, csrf_from, login

# Labs of these datalabs start on the fake runtime instead of a real JupyterLab.
FAKE_RUNTIME = 'runtime:\n  command: ["fake-lab"]\n  requires: []\n'


@pytest.fixture
def settings(tmp_path: Path, catalogue_dir: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        catalogue={"dirs": [catalogue_dir]},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
        builder={"allow_local_git": True},  # the test's repository is a local folder
    )


def as_user(client: TestClient, make_user, name: str, role: str = "user", groups=()) -> TestClient:
    """Another browser on the same server, logged in as a new user `name`."""
    make_user(name, role=role)
    other = TestClient(client.app, headers={"Accept": "text/html,application/xhtml+xml"})
    if groups:
        from datalabs.accounts import service as accounts
        from datalabs.db.engine import transaction

        with transaction(client.app.state.sessions) as db:
            for g in groups:
                accounts.create_group(db, g)
                accounts.set_member(db, g, name)
    assert login(other, name, PASSWORD).status_code == 303
    return other


def sources(tmp_path: Path, **kwargs) -> Path:
    folder = make_sources(tmp_path / f"src-{time.monotonic_ns()}", **kwargs)
    with open(folder / "datalab-meta.yml", "a") as f:
        f.write(FAKE_RUNTIME)
    return folder


def post(client: TestClient, page: str, action: str, data=None, **kwargs):
    token = csrf_from(client.get(page).text)
    return client.post(action, data={**(data or {}), "csrf_token": token}, follow_redirects=False, **kwargs)


def create(client: TestClient, name: str, base: str = "jupyterlab"):
    return post(client, "/appstore/new", "/appstore/new", {"name": name, "base": base})


def upload(client: TestClient, name: str, folder: Path):
    files = [
        ("files", (p.relative_to(folder).as_posix(), p.read_bytes(), "application/octet-stream"))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
    return post(client, f"/appstore/{name}/sources", f"/appstore/{name}/sources/upload", files=files)


def metadata_form(client: TestClient, name: str) -> dict[str, str]:
    """The metadata form's fields as the browser would send them back."""
    html = client.get(f"/appstore/{name}/metadata").text
    fields = dict(re.findall(r'<input id="meta-[^"]+" name="([^"]+)" type="text" value="([^"]*)"', html))
    fields.update(re.findall(r'<textarea id="meta-[^"]+" name="([^"]+)"[^>]*>([^<]*)</textarea>', html))
    return {k: v.replace("&#39;", "'").replace("&amp;", "&") for k, v in fields.items()}


def wait_built(client: TestClient, name: str, version: str) -> dict:
    for _ in range(1200):
        v = client.get(f"/api/v1/apps/{name}/versions/{version}").json()
        if v["state"] in ("built", "failed"):
            return v
        time.sleep(0.1)
    raise AssertionError(f"the build of {name} {version} did not end")


def build_app(client: TestClient, name: str, folder: Path, **changes) -> str:
    """The wizard from the type step to a finished build; returns the version."""
    assert create(client, name).headers["location"] == f"/appstore/{name}/sources"
    r = upload(client, name, folder)
    assert r.status_code == 303 and r.headers["location"] == f"/appstore/{name}/metadata", r.text
    form = {**metadata_form(client, name), **changes}
    r = post(client, f"/appstore/{name}/metadata", f"/appstore/{name}/metadata", form)
    assert r.status_code == 303, r.text
    version = r.headers["location"].rsplit("/", 1)[1]
    wait_built(client, name, version)
    return version


# ---- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/appstore", "/appstore/new", "/appstore/review", "/appstore/tiny", "/appstore/tiny/sources"]
)
def test_anonymous_visitors_are_sent_to_login(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"


def test_store_has_search_sections_and_create_button(user):
    r = user.get("/appstore")
    assert r.status_code == 200 and 'aria-current="page">App store</a>' in r.text
    for heading in ("Featured", "Running", "Developed by me", "Shared with me", "Published"):
        assert re.search(rf'<h2 id="h-\w+">{heading} <span class="count-pill">0</span>', r.text), heading
    assert '<a class="btn btn-primary" href="/appstore/new">Create datalab</a>' in r.text
    assert '<label for="appstore-q" class="visually-hidden">Search the app store</label>' in r.text
    assert "Review queue" not in r.text  # moderators only
    fragment = user.get("/appstore?q=zzz", headers={"HX-Request": "true"})
    assert "<header" not in fragment.text and "Nothing here matches “zzz”." in fragment.text


def test_review_queue_is_for_moderators_only(user, client, make_user):
    r = user.get("/appstore/review")
    assert r.status_code == 403 and "moderators only" in r.text.lower()
    mod = as_user(client, make_user, "mod", role="moderator")
    r = mod.get("/appstore/review")
    assert r.status_code == 200 and "Nothing to review." in r.text
    assert "Review queue" in mod.get("/appstore").text


# ---- the wizard ---------------------------------------------------------------------------------


def test_type_step_lists_bases_and_keeps_input_on_errors(user):
    page = user.get("/appstore/new").text
    assert 'id="base-jupyterlab" name="base" value="jupyterlab" checked' in page
    assert 'value="oddlab"' in page and 'for="app-name">Name</label>' in page
    assert '<li aria-current="step" class="current"><span class="step-number">1</span> Type</li>' in page
    r = create(user, "Not A Name")
    assert r.status_code == 422 and "is not a valid datalab name" in r.text
    assert 'value="Not A Name"' in r.text and 'aria-invalid="true"' in r.text
    r = create(user, "jupyterlab")
    assert r.status_code == 409 and "already exists; choose another name" in r.text
    r = create(user, "review")  # the queue's address
    assert r.status_code == 409 and "reserved by the app store" in r.text
    r = create(user, "fine", base="no-such-base")
    assert r.status_code == 422 and "no base datalab" in r.text.lower() and 'value="fine"' in r.text
    assert user.get("/appstore/fine").status_code == 404  # nothing was created


def test_bad_sources_are_refused_next_to_their_form(user, settings, tmp_path):
    create(user, "tiny")
    slip = evil_zip({"../escape.txt": b"x"})
    r = post(
        user,
        "/appstore/tiny/sources",
        "/appstore/tiny/sources/upload",
        files=[("files", ("evil.zip", slip, "application/zip"))],
    )
    assert r.status_code == 422 and "zip-slip" in r.text and 'id="upload-error"' in r.text
    assert (
        not draft_dir(settings, "tiny").exists() and not (tmp_path / "home" / "apps" / "escape.txt").exists()
    )
    r = post(user, "/appstore/tiny/sources", "/appstore/tiny/sources/upload", files=[])
    assert r.status_code == 422 and "Choose the files to upload" in r.text
    r = post(user, "/appstore/tiny/sources", "/appstore/tiny/sources/git", {"url": "file:///etc", "ref": "x"})
    assert r.status_code == 422 and 'id="git-error"' in r.text and 'value="file:///etc"' in r.text
    r = post(user, "/appstore/tiny/sources", "/appstore/tiny/sources/workspace", {"ws": "me", "path": "nope"})
    assert r.status_code == 422 and "is not a folder" in r.text and 'value="nope"' in r.text
    # No sources yet: the metadata step sends back to the sources.
    assert (
        user.get("/appstore/tiny/metadata", follow_redirects=False).headers["location"].endswith("/sources")
    )


def test_git_and_workspace_sources_prefill_the_metadata(user, settings, tmp_path):
    repo = sources(tmp_path)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "first"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=repo, check=True)
    create(user, "fromgit")
    r = post(user, "/appstore/fromgit/sources", "/appstore/fromgit/sources/git", {"url": str(repo)})
    assert r.status_code == 303, r.text
    page = user.get("/appstore/fromgit/metadata").text
    assert 'name="title" type="text" value="Tiny analysis"' in page
    assert "<code>dl-tinypkg==1.0</code>" in page and "<code>analysis.ipynb</code>" in page
    assert "From git: " in page

    folder = tmp_path / "home" / "workspaces" / "users" / "bob" / "projects" / "mine"
    folder.parent.mkdir(parents=True)
    sources(tmp_path).rename(folder)
    create(user, "fromws")
    assert '<option value="projects/mine">' in user.get("/appstore/fromws/sources").text  # the picker
    r = post(
        user,
        "/appstore/fromws/sources",
        "/appstore/fromws/sources/workspace",
        {"ws": "me", "path": "projects/mine"},
    )
    assert r.status_code == 303, r.text
    assert 'value="ada@example.org"' not in user.get("/appstore/fromws/metadata").text
    assert 'name="distribution.license" type="text" value="MIT"' in user.get("/appstore/fromws/metadata").text


def test_metadata_errors_keep_what_was_typed(user, tmp_path):
    create(user, "tiny")
    upload(user, "tiny", sources(tmp_path))
    page = user.get("/appstore/tiny/sources").text  # back on the sources: the draft is there
    assert "<strong>Sources ready:</strong> 4 files from upload." in page
    form = {**metadata_form(user, "tiny"), "title": "", "abstract": "My own abstract"}
    r = post(user, "/appstore/tiny/metadata", "/appstore/tiny/metadata", form)
    assert r.status_code == 422
    assert 'id="meta-title-error"' in r.text and "at least 1 character" in r.text
    assert "My own abstract</textarea>" in r.text and 'value="Ada Lovelace"' in r.text
    assert user.get("/api/v1/apps/tiny").json()["versions"] == []  # nothing was built


def test_build_test_launch_share_submit_and_history(user, client, make_user, tmp_path):
    version = build_app(user, "tiny", sources(tmp_path), title="Tiny from the form", keywords="a, b")
    assert version == "0.1.0-0"
    page = user.get(f"/appstore/tiny/versions/{version}").text
    assert 'data-state="built">Built</span>' in page and "BUILD SUCCEEDED" in page
    assert "data-events" not in page  # finished: nothing to follow
    assert re.search(r'class="card-panel build-ready" data-when="built" aria-labelledby="h-test">', page)
    assert user.get("/api/v1/apps/tiny").json()["title"] == "Tiny from the form"

    # Test launch: a lab of exactly this version, then its start page.
    r = post(user, f"/appstore/tiny/versions/{version}", f"/appstore/tiny/versions/{version}/launch")
    assert r.status_code == 303 and r.headers["location"].startswith("/labs/")
    lab = user.get("/api/v1/labs").json()[0]
    assert (lab["datalab"], lab["version"]) == ("tiny", version)
    store = user.get("/appstore").text
    running = store.split('id="section-running"')[1].split("</section>")[0]
    assert 'data-name="tiny"' in running

    # Private: invisible to others, everywhere.
    mia = as_user(client, make_user, "mia", groups=("astro",))
    for path in ("/appstore/tiny", f"/appstore/tiny/versions/{version}", "/catalogue/tiny"):
        assert mia.get(path).status_code == 404, path
    assert 'data-name="tiny"' not in mia.get("/appstore").text
    assert mia.get("/appstore/tiny/sources").status_code == 404

    # Sharing with a group; an unknown user is refused with the name, the input kept.
    r = post(user, "/appstore/tiny", "/appstore/tiny/share", {"users": "nobody", "groups": "astro"})
    assert r.status_code == 422 and "user &#39;nobody&#39;" in r.text and 'value="nobody"' in r.text
    assert post(user, "/appstore/tiny", "/appstore/tiny/share", {"groups": "astro"}).status_code == 303
    shared = mia.get("/appstore").text.split('id="section-shared"')[1].split("</section>")[0]
    assert 'data-name="tiny"' in shared and mia.get("/catalogue/tiny").status_code == 200
    r = post(mia, "/appstore/tiny", "/appstore/tiny/share", {"users": "mia"})
    assert r.status_code == 403 and "Only the author of &#39;tiny&#39; may change it." in r.text

    # Submission, then the history lists every step.
    r = post(user, "/appstore/tiny", "/appstore/tiny/submit", {"version": version})
    assert r.status_code == 303
    page = user.get("/appstore/tiny").text
    assert "is waiting for a moderator" in page and "Withdraw the submission" in page
    kinds = re.findall(r'<tr data-kind="([^"]+)">', page)
    assert kinds == ["submitted", "shared", "built", "sources", "created"], kinds  # not the refused share


def test_publishing_needs_a_licence(user, tmp_path):
    version = build_app(user, "nolicence", sources(tmp_path, license='""'))
    r = post(user, "/appstore/nolicence", "/appstore/nolicence/submit", {"version": version})
    assert r.status_code == 422 and 'id="submit-error"' in r.text
    assert "Distribution.license is required to publish" in r.text
    assert user.get("/api/v1/apps/nolicence").json()["state"] == "private"


def test_failed_build_highlights_the_failing_line(user, tmp_path):
    version = build_app(user, "broken", sources(tmp_path, requirement="dl-tinypkg==9.9"))
    page = user.get(f"/appstore/broken/versions/{version}").text
    assert 'data-state="failed">Build failed</span>' in page
    failing = re.findall(r'<li class="log-failing">([^<]*)</li>', page)
    # The tool's own error lines, then the BUILD FAILED line repeating them.
    assert len(failing) >= 2 and failing[-1].startswith("BUILD FAILED"), failing
    assert any("dl-tinypkg" in line for line in failing[:-1]), failing
    assert not any("uv venv" in line or "Building" in line for line in failing), failing
    assert re.search(r'data-when="failed" role="alert">', page)  # the failure box is shown
    assert "Test launch" in page  # present for the live page, but hidden:
    assert re.search(r'build-ready" data-when="built" aria-labelledby="h-test" hidden>', page)


def test_moderators_review_and_authors_cannot_approve_their_own(admin, client, make_user, tmp_path):
    version = build_app(admin, "tiny", sources(tmp_path))
    post(admin, "/appstore/tiny", "/appstore/tiny/submit", {"version": version})
    queue = admin.get("/appstore/review").text
    assert 'data-name="tiny"' in queue and "<dd>MIT</dd>" in queue and "<dd>Ada Lovelace</dd>" in queue
    assert f'action="/appstore/tiny/versions/{version}/launch"' in queue
    assert f'href="/appstore/tiny/versions/{version}"' in queue
    r = post(admin, "/appstore/review", "/appstore/tiny/review", {"decision": "approve", "comment": "mine"})
    assert r.status_code == 403 and "You cannot review your own submission" in r.text
    assert ">mine</textarea>" in r.text  # the comment is kept

    mod = as_user(client, make_user, "mod", role="moderator")
    r = post(mod, "/appstore/review", "/appstore/tiny/review", {"decision": "reject"})
    assert r.status_code == 422 and "Say why in a comment when rejecting" in r.text
    r = post(mod, "/appstore/review", "/appstore/tiny/review", {"decision": "approve", "comment": "fine"})
    assert r.status_code == 303
    assert "Nothing to review." in mod.get("/appstore/review").text
    r = post(admin, "/appstore/review", "/appstore/tiny/review", {"decision": "reject", "comment": "late"})
    assert r.status_code == 409 and 'id="review-error"' in r.text and "has no submission waiting" in r.text
    # The author's notification, linking to the app's page.
    assert '<a href="/appstore/tiny">Your datalab &#39;tiny&#39; 0.1.0-0 was approved by mod: fine</a>' in (
        admin.get("/appstore").text
    )

    # Published: everyone finds it, in the catalogue and in the store.
    eve = as_user(client, make_user, "eve")
    assert 'data-name="tiny"' in eve.get("/catalogue").text
    published = eve.get("/appstore?q=tiny").text.split('id="section-published"')[1].split("</section>")[0]
    assert 'data-name="tiny"' in published
    assert "Submit for publication" not in eve.get("/appstore/tiny").text  # not theirs
    assert post(mod, "/appstore/tiny", "/appstore/tiny/feature", {"featured": "yes"}).status_code == 303
    featured = eve.get("/appstore").text.split('id="section-featured"')[1].split("</section>")[0]
    assert 'data-name="tiny"' in featured
    r = post(eve, "/appstore/tiny", "/appstore/tiny/unpublish")
    assert r.status_code == 403 and "Only the author or a moderator may unpublish." in r.text


def test_sources_without_metadata_file_are_described_by_the_form(user, tmp_path):
    folder = sources(tmp_path)
    (folder / "datalab-meta.yml").unlink()
    create(user, "bare")
    upload(user, "bare", folder)
    page = user.get("/appstore/bare/metadata").text
    assert "Your sources have no readable <code>datalab-meta.yml</code>" in page
    assert "cannot be read" not in page  # a missing file is no error: the form is there for that
    form = {**metadata_form(user, "bare"), "title": "Bare datalab", "distribution.license": "MIT"}
    r = post(user, "/appstore/bare/metadata", "/appstore/bare/metadata", form)
    assert r.status_code == 303, r.text
    v = wait_built(user, "bare", "0.1.0-0")
    assert v["meta"]["title"] == "Bare datalab" and v["meta"]["distribution"]["license"] == "MIT"


def test_an_unreadable_metadata_file_is_explained_beside_the_form(user, tmp_path):
    folder = sources(tmp_path)
    (folder / "datalab-meta.yml").write_text("title: [unclosed\n")
    create(user, "badyaml")
    upload(user, "badyaml", folder)
    page = user.get("/appstore/badyaml/metadata").text
    assert "datalab-meta.yml cannot be read:</strong> datalab-meta.yml: not valid YAML: line 2" in page
    form = {**metadata_form(user, "badyaml"), "title": "Fixed in the form"}
    r = post(user, "/appstore/badyaml/metadata", "/appstore/badyaml/metadata", form)
    assert r.status_code == 422 and "not valid YAML" in r.text and 'value="Fixed in the form"' in r.text


def build_version(client: TestClient, name: str, folder: Path, **changes) -> str:
    """A further version of an existing app through the wizard's sources and metadata steps."""
    assert upload(client, name, folder).status_code == 303
    form = {**metadata_form(client, name), **changes}
    r = post(client, f"/appstore/{name}/metadata", f"/appstore/{name}/metadata", form)
    assert r.status_code == 303, r.text
    version = r.headers["location"].rsplit("/", 1)[1]
    assert wait_built(client, name, version)["state"] == "built"
    return version


def publication(page: str) -> dict[str, str]:
    """The app page's versions table: version -> its publication state."""
    rows = re.findall(r'<tr data-version="([^"]+)">.*?data-publication="([^"]+)"', page, re.S)
    return dict(rows)


def test_versions_are_published_one_by_one(user, client, make_user, tmp_path):
    """The app page lists each version's publication; the public's catalogue page has the approved one
    only, until the next is approved; unpublishing one version from its row withdraws just that one."""
    mod = as_user(client, make_user, "mod", role="moderator")
    eve = as_user(client, make_user, "eve")
    first = build_app(user, "tiny", sources(tmp_path))
    post(user, "/appstore/tiny", "/appstore/tiny/submit", {"version": first})
    r = post(mod, "/appstore/review", "/appstore/tiny/review", {"decision": "approve", "comment": "ok"})
    assert r.status_code == 303
    second = build_version(user, "tiny", sources(tmp_path), title="Secret successor")
    assert (first, second) == ("0.1.0-0", "0.1.0-1")

    # The author: both versions with their state; only the unpublished one can be submitted.
    page = user.get("/appstore/tiny").text
    assert publication(page) == {second: "private", first: "published"}
    options = re.findall(
        r"<option value=\"([^\"]+)\"", page.split('id="submit-version"')[1].split("</select>")[0]
    )
    assert options == [second] and f"Published: {first}." in page
    detail = user.get("/catalogue/tiny").text
    assert "Secret successor" in detail and f"?version={first}" in detail

    # The public: the approved version alone, on every page; the new one is a 404 and cannot launch.
    for path in ("/catalogue/tiny", "/appstore/tiny", "/appstore?q=tiny", "/catalogue?q=tiny"):
        text = eve.get(path).text
        assert "Tiny analysis" in text and "Secret successor" not in text and second not in text, path
    assert publication(eve.get("/appstore/tiny").text) == {first: "published"}
    for path in (f"/catalogue/tiny?version={second}", f"/catalogue/tiny/launch?version={second}"):
        assert eve.get(path).status_code == 404, path
    assert eve.get(f"/appstore/tiny/versions/{second}").status_code == 404
    r = post(eve, "/catalogue/tiny/launch", "/catalogue/tiny/launch", {"version": second})
    assert r.status_code == 404 and eve.get("/api/v1/labs").json() == []

    # Submitted: under review for the author and moderators, still invisible to the public.
    post(user, "/appstore/tiny", "/appstore/tiny/submit", {"version": second})
    page = user.get("/appstore/tiny").text
    assert publication(page) == {second: "review", first: "published"}
    badges = page.split('<div class="badges">')[1].split("</div>")[0]
    assert ">Waiting for review</span>" in badges and ">Published</span>" in badges
    assert publication(mod.get("/appstore/tiny").text) == {second: "review", first: "published"}
    queue = mod.get("/appstore/review").text
    assert f'<dd class="review-published">{first}</dd>' in queue and f"v{second}</span>" in queue
    assert mod.get(f"/catalogue/tiny?version={second}").status_code == 200  # to test-launch it
    assert eve.get(f"/catalogue/tiny?version={second}").status_code == 404
    assert 'data-state="published"' in eve.get("/appstore/tiny").text  # no word of the review
    r = post(mod, "/appstore/review", "/appstore/tiny/review", {"decision": "approve", "comment": "ok"})
    assert r.status_code == 303
    assert "Secret successor" in eve.get("/catalogue/tiny").text  # the new default for everyone

    # Unpublishing the newest from its row: the first is the public's default again.
    r = post(user, "/appstore/tiny", "/appstore/tiny/unpublish", {"version": second})
    assert r.status_code == 303
    assert publication(user.get("/appstore/tiny").text) == {second: "private", first: "published"}
    text = eve.get("/catalogue/tiny").text
    assert "Tiny analysis" in text and "Secret successor" not in text
