"""The app builder through the API with real builds (uv in bubblewrap, a local wheel): create, upload,
build log, failure line, private visibility, sharing, review, publication, history, export/import."""

from __future__ import annotations

import io
import json

import pytest

from tests.builder.support import evil_zip, make_sources, zip_of

pytestmark = pytest.mark.slow


def upload(client, name, data: bytes, filename="sources.zip", meta=None):
    files = [("files", (filename, io.BytesIO(data), "application/zip"))]
    return client.post(
        f"/api/v1/apps/{name}/versions", files=files, data={"meta": json.dumps(meta)} if meta else {}
    )


def built(app, client, name, version) -> dict:
    v = client.get(f"/api/v1/apps/{name}/versions/{version}").json()
    for _ in range(600):
        if v["state"] in ("built", "failed"):
            return v
        import time

        time.sleep(0.1)
        v = client.get(f"/api/v1/apps/{name}/versions/{version}").json()
    raise AssertionError(f"build did not end: {v}")


@pytest.fixture
def team(people):
    people.user("ada")
    people.user("bob")
    people.user("mia", groups=("astro",))
    people.user("mod", role="moderator")
    people.user("mod2", role="moderator")
    clients = {n: people.login(n) for n in ("ada", "bob", "mia", "mod", "mod2")}
    for name, c in clients.items():  # tokens: multipart uploads with a cookie would need a CSRF header
        c.headers.update(people.token(name))
    return clients


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_build_share_review_publish(app, team, tmp_path):
    ada, bob, mia, mod, mod2 = (team[n] for n in ("ada", "bob", "mia", "mod", "mod2"))
    assert ada.post("/api/v1/apps", json={"name": "tiny"}).status_code == 201
    assert ada.post("/api/v1/apps", json={"name": "tiny"}).status_code == 409
    assert ada.post("/api/v1/apps", json={"name": "jupyterlab"}).json()["error"]["code"] == "name_taken"
    r = upload(ada, "tiny", zip_of(make_sources(tmp_path / "src")))
    assert r.status_code == 202, r.text
    assert r.json()["version"] == "0.1.0-0"
    v = built(app, ada, "tiny", "0.1.0-0")
    assert v["state"] == "built", v
    events = ada.get("/api/v1/apps/tiny/versions/0.1.0-0/events")
    assert "event: log" in events.text and "event: built" in events.text
    assert "dl-tinypkg==1.0" in ada.get("/api/v1/apps/tiny/versions/0.1.0-0/logs").text

    # private: in the catalogue for its author only
    assert ada.get("/api/v1/datalabs/tiny").status_code == 200
    for other in (bob, mia, mod):
        assert other.get("/api/v1/datalabs/tiny").status_code == 404
        assert other.get("/api/v1/apps/tiny").status_code == 404
    assert bob.put("/api/v1/apps/tiny/share", json={"users": ["bob"]}).status_code == 404
    r = ada.put("/api/v1/apps/tiny/share", json={"users": ["bob"], "groups": ["astro"]})
    assert r.status_code == 200, r.text
    assert (
        bob.get("/api/v1/datalabs/tiny").status_code == 200
        and mia.get("/api/v1/datalabs/tiny").status_code == 200
    )
    assert bob.put("/api/v1/apps/tiny/share", json={}).status_code == 403  # shared, not theirs
    assert (
        ada.put("/api/v1/apps/tiny/share", json={"users": ["nobody"]})
        .json()["error"]["message"]
        .endswith("user 'nobody'")
    )
    ada.put("/api/v1/apps/tiny/share", json={})
    assert bob.get("/api/v1/datalabs/tiny").status_code == 404

    # a rebuild of unchanged requirements reuses the environment
    r = upload(ada, "tiny", zip_of(tmp_path / "src"))
    assert r.json()["version"] == "0.1.0-1"
    assert built(app, ada, "tiny", "0.1.0-1")["cached"] is True

    # review: only moderators, never the author, and a rejection says why
    assert ada.post("/api/v1/apps/tiny/submit", json={}).json()["state"] == "submitted"
    assert mod.get("/api/v1/datalabs/tiny").status_code == 200  # moderators may test-launch it
    assert [a["name"] for a in mod.get("/api/v1/apps/review-queue").json()] == ["tiny"]
    assert bob.get("/api/v1/apps/review-queue").status_code == 403
    assert bob.post("/api/v1/apps/tiny/review", json={"decision": "approve"}).status_code == 403
    assert mod.post("/api/v1/apps/tiny/review", json={"decision": "reject"}).status_code == 422
    r = mod.post("/api/v1/apps/tiny/review", json={"decision": "reject", "comment": "add a description"})
    assert r.json()["state"] == "rejected"
    assert "add a description" in ada.get("/api/v1/notices").json()[0]["text"]
    ada.post("/api/v1/apps/tiny/submit", json={})
    assert (
        mod.post("/api/v1/apps/tiny/review", json={"decision": "approve", "comment": "ok"}).json()["state"]
        == "published"
    )
    assert "approved" in ada.get("/api/v1/notices").json()[0]["text"]
    card = bob.get("/api/v1/datalabs?q=tiny").json()["items"]
    # only the approved version is public; 0.1.0-0 was never reviewed
    assert [c["name"] for c in card] == ["tiny"] and card[0]["versions"] == ["0.1.0-1"]
    kinds = [e["kind"] for e in ada.get("/api/v1/apps/tiny/history").json()]
    for kind in ("created", "sources", "built", "shared", "submitted", "rejected", "approved"):
        assert kind in kinds
    assert bob.post("/api/v1/apps/tiny/unpublish").status_code == 403
    assert ada.post("/api/v1/apps/tiny/unpublish").json()["state"] == "private"
    assert bob.get("/api/v1/datalabs/tiny").status_code == 404

    # export, then import elsewhere under another name: the sources and recipe travel, and build again
    archive = ada.get("/api/v1/apps/tiny/export")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    assert bob.get("/api/v1/apps/tiny/export").status_code == 404
    r = bob.post("/api/v1/apps/import", files={"archive": ("a.zip", archive.content)}, data={"name": "tiny2"})
    assert r.status_code == 201, r.text
    assert [v["version"] for v in r.json()["versions"]] == ["0.1.0-0", "0.1.0-1"]
    assert built(app, bob, "tiny2", "0.1.0-1")["state"] == "built"
    assert mod2 is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_moderator_cannot_approve_own_and_licence_is_required(app, team, tmp_path):
    mod, mod2 = team["mod"], team["mod2"]
    mod.post("/api/v1/apps", json={"name": "modlab"})
    src = make_sources(tmp_path / "nolicence", license="''")
    upload(mod, "modlab", zip_of(src))
    assert built(app, mod, "modlab", "0.1.0-0")["state"] == "built"
    r = mod.post("/api/v1/apps/modlab/submit", json={})
    assert r.status_code == 422 and "distribution.license is required" in r.json()["error"]["message"]
    r = upload(mod, "modlab", zip_of(src), meta={"distribution.license": "MIT"})  # the form's override
    assert built(app, mod, "modlab", r.json()["version"])["state"] == "built"
    assert mod.post("/api/v1/apps/modlab/submit", json={}).status_code == 200
    r = mod.post("/api/v1/apps/modlab/review", json={"decision": "approve"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_submission"
    assert (
        mod2.post("/api/v1/apps/modlab/review", json={"decision": "approve"}).json()["state"] == "published"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_broken_requirement_fails_with_the_line_and_publishes_nothing(app, team, tmp_path):
    ada, bob = team["ada"], team["bob"]
    ada.post("/api/v1/apps", json={"name": "broken"})
    upload(ada, "broken", zip_of(make_sources(tmp_path / "src", requirement="no-such-pkg-xyz==1.0")))
    v = built(app, ada, "broken", "0.1.0-0")
    assert v["state"] == "failed" and "no-such-pkg-xyz" in v["error"]
    events = ada.get("/api/v1/apps/broken/versions/0.1.0-0/events").text
    assert "event: failed" in events and "BUILD FAILED" in events
    assert ada.get("/api/v1/datalabs/broken").status_code == 404  # nothing in the catalogue
    r = ada.post("/api/v1/apps/broken/submit", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_built"
    assert bob.get("/api/v1/apps/broken").status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_sources_are_refused_clearly_and_nothing_is_kept(app, settings, team, tmp_path):
    ada = team["ada"]
    ada.post("/api/v1/apps", json={"name": "evil"})
    r = upload(ada, "evil", evil_zip({"datalab-meta.yml": b"title: x", "../../escape.txt": b"x"}))
    assert r.status_code == 422 and "../../escape.txt" in r.json()["error"]["message"]
    r = upload(ada, "evil", evil_zip({"datalab-meta.yml": b"title: x"}, symlink="link"))
    assert r.status_code == 422 and "'link' is a symbolic link" in r.json()["error"]["message"]
    r = upload(ada, "evil", evil_zip({"bomb": b"\0" * (20 * 2**20)}))
    assert r.status_code == 413 and "zip bomb" in r.json()["error"]["message"]
    r = upload(ada, "evil", evil_zip({"datalab-meta.yml": b"title: T\nabstract: A\nmission: {x: 1}\n"}))
    assert (
        r.status_code == 422
        and "mission" in r.json()["error"]["message"]
        and "line 3" in r.json()["error"]["message"]
    )
    assert not (tmp_path / "escape.txt").exists() and not (settings.home / "escape.txt").exists()
    assert list((settings.home / "apps" / "evil").iterdir()) == []  # no staging left, no version
    assert ada.get("/api/v1/apps/evil").json()["versions"] == []
    # git and workspace sources
    r = ada.post("/api/v1/apps/evil/versions", json={"git": {"url": "/etc"}})
    assert r.status_code == 422 and "not a git URL" in r.json()["error"]["message"]
    r = ada.post("/api/v1/apps/evil/versions", json={"workspace": {"path": "../x"}})
    assert r.status_code == 422
    r = ada.post("/api/v1/apps/evil/versions", json={"git": {"url": "file:///srv/some/repo.git"}})
    assert r.status_code == 422, r.text  # local repositories only when the operator allows them
    settings.builder.allow_local_git = True
    from tests.builder.test_sources import bare_repo

    url = bare_repo(tmp_path, make_sources(tmp_path / "gitsrc"))
    r = ada.post("/api/v1/apps/evil/versions", json={"git": {"url": url}})
    assert r.status_code == 202 and r.json()["source_kind"] == "git", r.text
    folder = settings.home / "workspaces" / "users" / "ada" / "mylab"
    make_sources(folder)
    r = ada.post("/api/v1/apps/evil/versions", json={"workspace": {"ws": "me", "path": "mylab"}})
    assert r.status_code == 202 and r.json()["source_ref"] == "me:mylab", r.text
    for v in ("0.1.0-0", "0.1.0-1"):
        assert built(app, ada, "evil", v)["state"] == "built"


def card_of(client, name) -> dict:
    """The datalab as `client` finds it in the catalogue's search (None when not listed)."""
    items = [
        c for c in client.get("/api/v1/datalabs", params={"q": name}).json()["items"] if c["name"] == name
    ]
    return items[0] if items else None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_publication_is_per_version(app, team, tmp_path):
    """An approval publishes exactly the version reviewed: builds made afterwards stay private (not listed,
    not the default, not launchable) until they are submitted and approved in turn."""
    ada, bob, mod, mod2 = (team[n] for n in ("ada", "bob", "mod", "mod2"))
    ada.post("/api/v1/apps", json={"name": "multi"})
    src = make_sources(tmp_path / "src")
    upload(ada, "multi", zip_of(src))
    assert built(app, ada, "multi", "0.1.0-0")["state"] == "built"
    ada.post("/api/v1/apps/multi/submit", json={})
    r = mod.post("/api/v1/apps/multi/review", json={"decision": "approve"})
    assert r.json()["state"] == "published"
    assert [(v["version"], v["published"]) for v in r.json()["versions"]] == [("0.1.0-0", True)]
    assert card_of(bob, "multi")["versions"] == ["0.1.0-0"]

    # The author builds 0.1.0-1 (with a new title): private, the public still gets 0.1.0-0 alone.
    r = upload(ada, "multi", zip_of(src), meta={"title": "Secret successor"})
    assert r.json()["version"] == "0.1.0-1" and r.json()["published"] is False
    assert built(app, ada, "multi", "0.1.0-1")["state"] == "built"
    card = card_of(bob, "multi")
    assert (
        card["versions"] == ["0.1.0-0"] and card["version"] == "0.1.0-0" and card["title"] == "Tiny analysis"
    )
    detail = bob.get("/api/v1/datalabs/multi").json()
    assert detail["version"] == "0.1.0-0" and detail["meta"]["title"] == "Tiny analysis"
    assert [m["version"] for m in bob.get("/api/v1/datalabs/multi/versions").json()] == ["0.1.0-0"]
    r = bob.get("/api/v1/datalabs/multi/versions/0.1.0-1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "version_not_found"
    assert bob.get("/api/v1/datalabs", params={"q": "secret"}).json()["total"] == 0  # nor its words
    r = bob.post("/api/v1/labs", json={"datalab": "multi", "version": "0.1.0-1"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "version_not_found", r.text
    assert bob.get("/api/v1/labs").json() == []
    # ... nor through the apps API: its versions, build log and history show only what is published.
    seen = bob.get("/api/v1/apps/multi").json()
    assert [v["version"] for v in seen["versions"]] == ["0.1.0-0"] and seen["title"] == "Tiny analysis"
    for path in ("", "/logs", "/events"):
        assert bob.get(f"/api/v1/apps/multi/versions/0.1.0-1{path}").status_code == 404, path
    assert {e["version"] for e in bob.get("/api/v1/apps/multi/history").json()} <= {"", "0.1.0-0"}
    # The author sees both, the new one as the default; a moderator not reviewing it does not see it.
    card = card_of(ada, "multi")
    assert card["versions"] == ["0.1.0-1", "0.1.0-0"] and card["title"] == "Secret successor"
    assert ada.get("/api/v1/datalabs", params={"q": "secret"}).json()["total"] == 1
    mine = ada.get("/api/v1/apps/multi").json()
    assert [(v["version"], v["published"]) for v in mine["versions"]] == [
        ("0.1.0-0", True),
        ("0.1.0-1", False),
    ]
    assert mod.get("/api/v1/datalabs/multi/versions/0.1.0-1").status_code == 404

    # Submitted: moderators see (and may test-launch) the version under review; the public does not.
    r = ada.post("/api/v1/apps/multi/submit", json={"version": "0.1.0-0"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_published"
    assert ada.post("/api/v1/apps/multi/submit", json={}).json()["submitted_version"] == "0.1.0-1"
    assert mod.get("/api/v1/datalabs/multi/versions/0.1.0-1").status_code == 200
    assert [v["under_review"] for v in mod.get("/api/v1/apps/multi").json()["versions"]] == [False, True]
    assert card_of(bob, "multi")["versions"] == ["0.1.0-0"]
    public = bob.get("/api/v1/apps/multi").json()
    assert public["state"] == "published" and public["submitted_version"] == ""  # the review is not theirs
    # A rejection leaves the published version public.
    r = mod.post("/api/v1/apps/multi/review", json={"decision": "reject", "comment": "title?"})
    assert r.json()["state"] == "published"
    assert mod.get("/api/v1/datalabs/multi/versions/0.1.0-1").status_code == 404
    assert card_of(bob, "multi")["versions"] == ["0.1.0-0"]
    ada.post("/api/v1/apps/multi/submit", json={"version": "0.1.0-1"})
    r = mod2.post("/api/v1/apps/multi/review", json={"decision": "approve"})
    assert [v["published"] for v in r.json()["versions"]] == [True, True]
    card = card_of(bob, "multi")
    assert card["versions"] == ["0.1.0-1", "0.1.0-0"] and card["version"] == "0.1.0-1"

    # Unpublishing one version withdraws that one; the older published one is the default again.
    r = ada.post("/api/v1/apps/multi/unpublish", json={"version": "0.1.0-1"})
    assert r.status_code == 200 and r.json()["state"] == "published", r.text
    assert card_of(bob, "multi")["versions"] == ["0.1.0-0"]
    r = ada.post("/api/v1/apps/multi/unpublish", json={"version": "0.1.0-1"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_published"
    assert ada.post("/api/v1/apps/multi/unpublish", json={"version": "9.9"}).status_code == 404
    # Without a version (a moderator's take-down here): every version, the app is private again.
    ada.post("/api/v1/apps/multi/submit", json={"version": "0.1.0-1"})
    r = mod.post("/api/v1/apps/multi/unpublish")
    assert r.status_code == 200 and r.json()["state"] == "private", r.text
    notice = ada.get("/api/v1/notices").json()[0]["text"]
    assert notice == "Your datalab 'multi' 0.1.0-0, 0.1.0-1 was unpublished by mod."
    assert [v["published"] for v in ada.get("/api/v1/apps/multi").json()["versions"]] == [False, False]
    assert mod.get("/api/v1/apps/review-queue").json() == []  # the open submission went with it
    assert bob.get("/api/v1/datalabs/multi").status_code == 404
    assert bob.get("/api/v1/apps/multi").status_code == 404
    assert card_of(ada, "multi")["versions"] == ["0.1.0-1", "0.1.0-0"]
    kinds = [(e["kind"], e["version"]) for e in ada.get("/api/v1/apps/multi/history").json()][:4]
    assert kinds == [
        ("withdrawn", "0.1.0-1"),
        ("unpublished", "0.1.0-0"),
        ("submitted", "0.1.0-1"),
        ("unpublished", "0.1.0-1"),
    ]
