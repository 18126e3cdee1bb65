"""Usage pages: /usage (one's own month: totals, a chart of CPU-hours per day, by cluster and datalab,
sessions) and, for administrators, /admin/usage (by user, group and cluster) and its CSV export. Who
sees what: anonymous, another user, a team member, the owner of the usage, an administrator."""

from __future__ import annotations

import csv
import io
import re

import pytest

from datalabs.accounts import service as accounts
from datalabs.db.engine import transaction
from tests.usage.support import MONTH, add_session
from tests.web.conftest import login
from tests.web.labs_support import browser

PAGES = ["/usage", "/admin/usage", "/admin/usage.csv"]


@pytest.fixture
def people(client, make_user):
    """tess (the owner of the usage, team astro), mia (astro), bob (no team), root (administrator)."""
    for name, role in (("tess", "user"), ("mia", "user"), ("bob", "user"), ("root", "admin")):
        make_user(name, role=role)
    with transaction(client.app.state.sessions) as db:
        accounts.create_group(db, "astro")
        accounts.set_member(db, "astro", "tess")
        accounts.set_member(db, "astro", "mia")
    add_session(client.app, "tess", datalab="tessfits", cluster="local", cpu=2, minutes=90)
    add_session(
        client.app, "tess", datalab="tessfits", cluster="local", cpu=1, gpu=1, minutes=30, lab_id="t2"
    )
    add_session(client.app, "mia", datalab="miaspec", cpu=4, minutes=15)

    def as_(name: str):
        other = browser(client)
        if name != "anonymous":
            assert login(other, name).status_code == 303
        return other

    return as_


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_log_in(people, path):
    r = people("anonymous").get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"


@pytest.mark.parametrize("who", ["bob", "mia", "tess"])
@pytest.mark.parametrize("path", ["/admin/usage", "/admin/usage.csv"])
def test_only_administrators_see_everyones_usage(people, who, path):
    r = people(who).get(path, params={"month": MONTH})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "tessfits" not in r.text and "miaspec" not in r.text


@pytest.mark.parametrize(("who", "sees", "not_seen"), [
    ("tess", ["tessfits"], ["miaspec"]),  # the owner
    ("mia", ["miaspec"], ["tessfits"]),  # a team member: her own only
    ("bob", [], ["tessfits", "miaspec"]),  # another user
    ("root", [], ["tessfits", "miaspec"]),  # an administrator's own page is their own
])  # fmt: skip
def test_the_usage_page_shows_only_ones_own(people, who, sees, not_seen):
    page = people(who).get("/usage", params={"month": MONTH}).text
    for name in sees:
        assert name in page
    for name in not_seen:
        assert name not in page


def test_the_owners_page_has_totals_chart_and_tables(people):
    page = people("tess").get("/usage", params={"month": MONTH})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    text = page.text
    assert (
        "March 2025" in text
        and 'href="/usage?month=2025-02"' in text
        and 'href="/usage?month=2025-04"' in text
    )
    totals = dict(re.findall(r'data-total="(\w+)">([^<]*)<', text))
    assert totals["cpu_hours"] == "3.50" and totals["gpu_hours"] == "0.50"  # 2 x 1.5 h + 1 x 0.5 h
    bars = re.findall(r'<rect class="usage-bar"[^>]*height="([\d.]+)"[^>]*><title>([^<]*)</title>', text)
    assert len(bars) == 31 and bars[0][1] == "2025-03-01: 3.50 CPU-hours" and float(bars[0][0]) > 0
    assert all(float(height) == 0 for height, _ in bars[1:])
    by_cluster = re.search(r'id="usage-by-cluster".*?</table>', text, re.S)[0]
    assert re.search(r'data-key="local">.*?data-col="cpu_hours">3.50<', by_cluster, re.S)
    assert 'data-key="tessfits (datalab)"' in text
    assert text.count('<tr data-session="') == 2


def test_a_bad_month_is_an_html_page_saying_why(people):
    r = people("tess").get("/usage", params={"month": "2025-13"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "is not a month such as" in r.text
    r = people("root").get("/admin/usage.csv", params={"month": "<script>"})
    assert r.status_code == 422 and "<script>" not in r.text
    r = people("tess").get("/usage", params={"month": "2025-03" * 50})  # past the parameter's length
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")


def test_the_admin_page_shows_users_groups_and_clusters(people):
    text = people("root").get("/admin/usage", params={"month": MONTH}).text
    users = re.search(r'id="usage-by-user".*?</table>', text, re.S)[0]
    assert re.findall(r'data-key="(\w+)"', users) == ["tess", "mia"]
    groups = re.search(r'id="usage-by-group".*?</table>', text, re.S)[0]
    assert re.search(r'data-key="astro">.*?data-col="cpu_hours">4.50<', groups, re.S)
    assert 'href="/admin/usage.csv?month=2025-03"' in text and 'aria-current="page">Usage' in text


def test_the_csv_export_has_one_line_per_session(people):
    r = people("root").get("/admin/usage.csv", params={"month": MONTH})
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="usage-2025-03.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted((row["user"], row["name"], row["cpu_hours"], row["gpu_hours"]) for row in rows) == [
        ("mia", "miaspec", "1.0000", "0.0000"),
        ("tess", "tessfits", "0.5000", "0.5000"),
        ("tess", "tessfits", "3.0000", "0.0000"),
    ]
    assert {row["groups"] for row in rows} == {"astro"} and {row["kind"] for row in rows} == {"lab"}
    assert rows[0]["start"].startswith("2025-03-01T00:00:00")


def test_usage_is_linked_from_the_header_and_the_admin_tabs(people):
    assert '<a href="/usage" aria-current="page">Usage</a>' in people("bob").get("/usage").text
    assert 'href="/admin/usage"' in people("root").get("/admin/users").text
