"""GET /api/v1/usage: one's own usage by cluster, datalab, user, group or day; administrators anyone's;
bad periods refused with the reason."""

from __future__ import annotations

import pytest

from tests.api.test_labs import settings  # noqa: F401 (fake datalabs)
from tests.usage.support import PERIOD, add_session


@pytest.fixture
def usage(people, app):
    people.user("ada", groups=("astro",))
    people.user("mia", groups=("astro",))
    people.user("tess")
    people.user("root", role="admin")
    add_session(app, "ada", datalab="fake", cluster="local", cpu=2, minutes=30)
    add_session(app, "ada", datalab="other", cluster="local", cpu=1, gpu=1, minutes=6)
    add_session(app, "mia", datalab="fake", cpu=4, minutes=15)
    add_session(app, "tess", datalab="fake", cpu=1, minutes=60)
    return people


def _rows(r) -> dict[str, dict]:
    assert r.status_code == 200, r.text
    return {row["key"]: row for row in r.json()["rows"]}


def test_a_user_gets_their_own_usage_by_cluster_and_datalab(usage):
    c = usage.login("ada")
    body = c.get("/api/v1/usage", params=PERIOD).json()
    assert (body["by"], body["from"], body["to"]) == ("cluster", "2025-03-01", "2025-03-31")
    assert body["totals"]["sessions"] == 2 and body["totals"]["cpu_hours"] == pytest.approx(1.1)
    assert body["totals"]["gpu_hours"] == pytest.approx(0.1)
    assert {s["user"] for s in body["sessions"]} == {"ada"}
    assert _rows(c.get("/api/v1/usage", params={**PERIOD, "by": "datalab"})) == {
        "fake (datalab)": {"key": "fake (datalab)", "sessions": 1, "hours": 0.5, "cpu_hours": 1.0,
                           "gpu_hours": 0.0, "memory_gb_hours": 0.5},
        "other (datalab)": {"key": "other (datalab)", "sessions": 1, "hours": 0.1, "cpu_hours": 0.1,
                            "gpu_hours": 0.1, "memory_gb_hours": 0.1},
    }  # fmt: skip
    assert c.get("/api/v1/usage", params={**PERIOD, "user": "ada"}).json()["totals"] == body["totals"]
    assert c.get("/api/v1/usage").json()["sessions"] == []  # this month's: nothing


def test_administrators_see_a_user_a_group_or_everyone(usage):
    root = usage.login("root")
    assert root.get("/api/v1/usage", params=PERIOD).json()["sessions"] == []  # their own, by default
    everyone = _rows(root.get("/api/v1/usage", params={**PERIOD, "all": "true", "by": "user"}))
    assert {k: v["cpu_hours"] for k, v in everyone.items()} == {"ada": 1.1, "mia": 1.0, "tess": 1.0}
    groups = _rows(root.get("/api/v1/usage", params={**PERIOD, "all": "true", "by": "group"}))
    assert groups["astro"]["cpu_hours"] == 2.1 and groups["(no group)"]["cpu_hours"] == 1.0
    astro = root.get("/api/v1/usage", params={**PERIOD, "group": "astro"}).json()
    assert {s["user"] for s in astro["sessions"]} == {"ada", "mia"}
    assert {
        s["user"] for s in root.get("/api/v1/usage", params={**PERIOD, "user": "tess"}).json()["sessions"]
    } == {"tess"}
    for params, code in (({"user": "nobody"}, "user_not_found"), ({"group": "nogroup"}, "group_not_found")):
        r = root.get("/api/v1/usage", params=params)
        assert r.status_code == 404 and r.json()["error"]["code"] == code


@pytest.mark.parametrize("params", [{"user": "mia"}, {"group": "astro"}, {"all": "true"}])
def test_others_usage_is_refused_to_users_and_to_an_admins_narrow_token(usage, params):
    r = usage.login("ada").get("/api/v1/usage", params=params)
    assert r.status_code == 403 and "only administrators" in r.json()["error"]["message"]
    r = usage.client.get("/api/v1/usage", params=params, headers=usage.token("root", ["labs:read"]))
    assert r.status_code == 403
    # An unknown user is refused the same way: users learn nothing of who exists.
    assert usage.login("ada").get("/api/v1/usage", params={"user": "nobody"}).status_code == 403


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"from": "2026-12-10", "to": "2026-12-01"}, "'to' must not be before 'from'"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "at most 366 days"),
        ({"from": "yesterday"}, "from"),
        ({"by": "planet"}, "by"),
        ({"user": "x" * 65}, "user"),
    ],
)
def test_bad_parameters_get_422_saying_why(usage, params, says):
    r = usage.login("ada").get("/api/v1/usage", params=params)
    assert r.status_code == 422 and says in r.text
    assert r.json()["error"]["code"]


def test_a_chosen_period_and_days(usage, app):
    c = usage.login("ada")
    days = c.get("/api/v1/usage", params={**PERIOD, "by": "day"}).json()["rows"]
    assert len(days) == 31 and days[0]["key"] == "2025-03-01" and days[0]["cpu_hours"] == pytest.approx(1.1)
    assert sum(day["sessions"] for day in days) == 2
    empty = c.get("/api/v1/usage", params={"from": "2020-02-01", "to": "2020-02-29"}).json()
    assert (empty["from"], empty["to"], empty["sessions"]) == ("2020-02-01", "2020-02-29", [])
