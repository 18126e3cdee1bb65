"""The notification centre in process against the real app: the header's bell on every page, the list
(newest first, paged, unread marked), following a notice, "Mark all read" (CSRF), who may see what, and
HTML errors for bad input."""

from __future__ import annotations

import re

import pytest

from datalabs.accounts.service import get_user
from datalabs.db.engine import transaction
from datalabs.notifications import service as notifications


def _notify(client, name: str, *texts: str, link: str = "/runs/abc") -> list[int]:
    with transaction(client.app.state.sessions) as db:
        made = [notifications.add(db, get_user(db, name).id, text, link) for text in texts]
        db.flush()
        return [n.id for n in made]


def _bell(html: str) -> int:
    return int(re.search(r'<a class="bell" href="/notifications" data-unread="(\d+)"', html).group(1))


def _texts(html: str) -> list[str]:
    return re.findall(
        r'<li class="notice-item[^"]*" data-notice="\d+">.*?<(?:a href="[^"]*"|span)>([^<]*)<', html, re.S
    )


@pytest.mark.parametrize("path", ["/notifications", "/notifications/1"])
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"


def test_anonymous_post_changes_nothing(client, make_user):
    make_user("bob")
    _notify(client, "bob", "x")
    r = client.post("/notifications/read", data={"csrf_token": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with client.app.state.sessions() as db:
        assert notifications.unread_count(db, get_user(db, "bob").id) == 1


def test_the_bell_counts_unread_notices_on_every_page(user):
    assert _bell(user.get("/catalogue").text) == 0
    assert 'class="count-pill bell-count"' not in user.get("/catalogue").text
    _notify(user, "bob", "one", "two")
    for path in ("/catalogue", "/runs", "/workspace", "/notifications", "/no-such-page"):
        page = user.get(path).text
        assert _bell(page) == 2 and 'title="Notifications: 2 unread"' in page, path


def test_the_list_newest_first_with_unread_marked_and_following_one_reads_it(user):
    first, second = _notify(user, "bob", "Run r1 of hello succeeded.", "Run r2 of hello failed: <b>no</b>")
    page = user.get("/notifications").text
    assert _texts(page) == ["Run r2 of hello failed: &lt;b&gt;no&lt;/b&gt;", "Run r1 of hello succeeded."]
    assert page.count('<span class="badge badge-new">New</span>') == 2
    assert "2 notifications, 2 unread." in page and 'aria-current="page"' in page
    r = user.get(f"/notifications/{first}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/runs/abc"
    page = user.get("/notifications").text
    assert page.count("badge-new") == 1 and "2 notifications, 1 unread." in page and _bell(page) == 1
    assert f'data-notice="{first}"' in page and f'<li class="notice-item" data-notice="{first}">' in page


def test_mark_all_read_needs_the_csrf_token(user, post_form):
    _notify(user, "bob", "a", "b", "c")
    r = user.post("/notifications/read", data={}, follow_redirects=False)
    assert r.status_code == 403 and "<html" in r.text  # an HTML page, never raw JSON
    assert _bell(user.get("/notifications").text) == 3
    r = post_form(user, "/notifications", "/notifications/read", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/notifications"
    page = user.get("/notifications").text
    assert "Marked 3 notifications read." in page and _bell(page) == 0
    assert "Mark all read" not in page and "badge-new" not in page


def test_paging(user):
    _notify(user, "bob", *(f"note {i:02d}" for i in range(notifications.PER_PAGE + 3)))
    first = user.get("/notifications").text
    assert len(_texts(first)) == notifications.PER_PAGE and _texts(first)[0] == "note 52"
    assert 'href="/notifications?page=2" rel="next"' in first and "Page 1 of 2" in first
    second = user.get("/notifications", params={"page": 2}).text
    assert _texts(second) == ["note 02", "note 01", "note 00"] and 'rel="prev"' in second
    assert "No notifications on this page" in user.get("/notifications", params={"page": 9}).text


@pytest.mark.parametrize(
    "path",
    [
        "/notifications?page=0",
        "/notifications?page=x",
        "/notifications?page=-1",
        "/notifications/x",
        "/notifications/99999999999",
    ],
)
def test_bad_input_gets_an_html_error(user, path):
    r = user.get(path)
    assert r.status_code == 422 and "<html" in r.text and "error" not in r.headers["content-type"]


@pytest.mark.parametrize("who", ["other", "admin"])
def test_another_users_notices_stay_private(client, make_user, login, post_form, who):
    make_user("ada")
    make_user("eve", role="admin" if who == "admin" else "user")
    [adas] = _notify(client, "ada", "ada's secret run ended")
    assert login(client, "eve").status_code == 303
    page = client.get("/notifications").text
    assert "ada's secret run ended" not in page and _bell(page) == 0
    r = client.get(f"/notifications/{adas}", follow_redirects=False)
    assert r.status_code == 404 and "<html" in r.text and "ada" not in r.text.split("<main", 1)[1]
    post_form(client, "/notifications", "/notifications/read")
    with client.app.state.sessions() as db:
        assert notifications.unread_count(db, get_user(db, "ada").id) == 1


def test_a_notice_without_a_link_is_text_and_following_it_stays_here(user):
    [plain] = _notify(user, "bob", "plain words", link="")
    page = user.get("/notifications").text
    assert "<span>plain words</span>" in page
    r = user.get(f"/notifications/{plain}", follow_redirects=False)
    assert r.headers["location"] == "/notifications"
