"""Admin → Catalogue: the datalabs that cannot be used and why, "Build now" for those with an environment
of their own, and the build page following the log live (real app, real uv in bubblewrap, offline)."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest

from datalabs.config import Settings
from tests.catalogue.test_builds import tiny_datalab

STATUS = "/admin/catalogue/tiny/build/status"


@pytest.fixture
def settings(tmp_path: Path, catalogue_dir: Path) -> Settings:
    tiny_datalab(catalogue_dir)
    tiny_datalab(catalogue_dir, requirement="dl-tinypkg==9.9", name="broken-env")
    meta = catalogue_dir / "broken-env" / "datalab-meta.yml"
    meta.write_text(meta.read_text().replace("Tiny Lab", "Broken Env"))
    return Settings(home=tmp_path / "home", catalogue={"dirs": [catalogue_dir], "builtin": False})


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def row(page: str, name: str) -> str:
    return page.split(f'data-datalab="{name}"', 1)[1].split("</tr>", 1)[0]


def wait_done(admin, url: str) -> str:
    deadline = time.monotonic() + 120
    while True:
        live = admin.get(url).text
        if 'data-state="queued"' not in live and 'data-state="building"' not in live:
            return live
        assert 'hx-trigger="every 1s"' in live and time.monotonic() < deadline  # polled while active
        time.sleep(0.1)


def test_build_now_builds_and_the_page_follows_the_log(admin, csrf_from):
    page = admin.get("/admin/catalogue").text
    tiny = row(page, "tiny")
    assert "not built yet" in text_of(tiny) and "Build now" in tiny
    assert "Build now" not in row(page, "oddlab") and "no-such-tool-xyz" in text_of(row(page, "oddlab"))
    token = csrf_from(page)
    assert admin.post("/admin/catalogue/tiny/build", data={}).status_code == 403  # no CSRF token

    r = admin.post("/admin/catalogue/tiny/build", data={"csrf_token": token})
    assert r.url.path == "/admin/catalogue/tiny/build" and "Building the environment of" in r.text
    live = wait_done(admin, STATUS)
    assert 'data-state="built"' in live and "hx-trigger" not in live
    assert "BUILD SUCCEEDED" in live and "dl_tinypkg" in live.replace("-", "_")
    page = admin.get("/admin/catalogue").text
    assert 'data-datalab="tiny"' not in page  # usable now
    assert admin.get("/api/v1/datalabs/tiny", headers={"Accept": "application/json"}).json()["available"]

    # Again: requirements unchanged, the environment is reused.
    admin.post("/admin/catalogue/tiny/build", data={"csrf_token": token})
    assert "environment reused" in wait_done(admin, STATUS)


def test_a_failed_build_shows_its_reason(admin, csrf_from):
    token = csrf_from(admin.get("/admin/catalogue").text)
    admin.post("/admin/catalogue/broken-env/build", data={"csrf_token": token})
    live = wait_done(admin, "/admin/catalogue/broken-env/build/status")
    assert 'data-state="failed"' in live
    error = text_of(live.split("data-build-error>", 1)[1].split("</p>", 1)[0])
    assert "dl-tinypkg==9.9" in error
    reason = text_of(row(admin.get("/admin/catalogue").text, "broken-env"))
    assert "could not be built" in reason and error in html.unescape(reason)


def test_a_second_click_while_building_says_so(admin, csrf_from, settings):
    from datalabs.catalogue import builds

    token = csrf_from(admin.get("/admin/catalogue").text)
    lock = builds.claim(settings, "tiny", "1.0")  # a build of it runs (here: held by the test)
    try:
        r = admin.post("/admin/catalogue/tiny/build", data={"csrf_token": token})
    finally:
        lock.close()
    assert r.url.path == "/admin/catalogue/tiny/build" and "already being built" in r.text


def test_nothing_to_build_and_unknown_datalabs(admin, csrf_from):
    token = csrf_from(admin.get("/admin/catalogue").text)
    r = admin.post("/admin/catalogue/oddlab/build", data={"csrf_token": token})
    assert r.url.path == "/admin/catalogue" and "nothing to build" in r.text
    missing = admin.get("/admin/catalogue/no-such-lab/build")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/admin/catalogue/tiny/build", "/admin/catalogue/tiny/build/status"])
def test_plain_users_and_anonymous_cannot_see_or_start_builds(client, make_user, login, csrf_from, path):
    anonymous = client.get(path, follow_redirects=False)
    assert anonymous.status_code in (303, 401) and "/login" in anonymous.headers.get("location", "/login")
    make_user("bob")
    login(client, "bob")
    assert client.get(path).status_code == 403
    token = csrf_from(client.get("/catalogue").text)
    r = client.post("/admin/catalogue/tiny/build", data={"csrf_token": token})
    assert r.status_code == 403
    from datalabs.catalogue import builds

    assert builds.read_status(client.app.state.settings, "tiny", "1.0").state == "never"
