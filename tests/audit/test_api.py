"""GET /api/v1/audit and /api/v1/audit.csv: administrators only, filters, cursor, capped limit, safe CSV."""

from __future__ import annotations

import csv
import io

import pytest

from datalabs.audit import chain
from datalabs.audit.query import MAX_LIMIT


@pytest.fixture
def admin(people):
    people.user("root", role="admin")
    return people.login("root")


def _fill(app, n: int, **fields) -> None:
    with app.state.sessions() as db:
        for i in range(n):
            chain.append(
                db, **{"who": "ann", "what": "POST /x", "outcome": "200", "target": str(i), **fields}
            )
        db.commit()


@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/audit.csv"])
def test_only_administrators_read_the_audit_log(people, admin, path):
    people.user("ann")
    people.user("mia", groups=("astro",))
    assert people.client.get(path, cookies={}).status_code == 401
    assert people.login("ann").get(path).status_code == 403
    assert people.login("mia").get(path).status_code == 403  # a team member is no administrator
    r = admin.get(path)
    assert r.status_code == 200, r.text


def test_filters_and_cursor_walk_every_record_once(people, admin):
    _fill(people.app, 7)
    _fill(people.app, 2, who="bob", outcome="403")
    seen, cursor = [], None
    while True:
        params = {"who": "ann", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/api/v1/audit", params=params).json()
        seen += [item["target"] for item in page["items"]]
        assert all(item["who"] == "ann" for item in page["items"])
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [str(i) for i in reversed(range(7))]  # newest first, none twice, none missed
    refused = admin.get("/api/v1/audit", params={"outcome": "403", "what": "POST /x"}).json()["items"]
    assert [r["who"] for r in refused] == ["bob", "bob"]
    assert admin.get("/api/v1/audit", params={"to": "2000-01-01T00:00:00Z"}).json()["items"] == []
    assert len(admin.get("/api/v1/audit", params={"from": "2000-01-01", "who": "bob"}).json()["items"]) == 2


def test_huge_limits_are_capped_and_bad_input_is_a_clear_422(people, admin):
    _fill(people.app, MAX_LIMIT + 5)
    page = admin.get("/api/v1/audit", params={"limit": 10**12}).json()
    assert len(page["items"]) == MAX_LIMIT and page["next_cursor"]
    for params in ({"from": "yesterday"}, {"to": "2024-13-45"}, {"limit": 0}, {"cursor": "x"}):
        r = admin.get("/api/v1/audit", params=params)
        assert r.status_code == 422, params
        assert r.json()["error"]["code"]
    assert admin.get("/api/v1/audit.csv", params={"from": "not-a-date"}).status_code == 422


def test_csv_export_escapes_formula_cells(people, admin):
    _fill(people.app, 1, who="=cmd|' /C calc'!A0", target="+1+1", outcome="-1")
    _fill(people.app, 1, who="@SUM(A1:A9)")
    r = admin.get("/api/v1/audit.csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    evil = [row for row in rows if row["what"] == "POST /x"]
    assert [row["who"] for row in evil] == ["'=cmd|' /C calc'!A0", "'@SUM(A1:A9)"]
    assert evil[0]["target"] == "'+1+1" and evil[0]["outcome"] == "'-1"
    assert all(not v.startswith(("=", "+", "-", "@")) for row in rows for v in row.values())
