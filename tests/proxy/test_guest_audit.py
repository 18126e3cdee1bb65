"""A share guest's entry into a lab is in the audit log (issue 19: "lab open by a guest"): one record each
time the guest's browser is let in on the lab's origin (where a one-time code is written anyway), none for
the requests that follow, none for the owner or for those refused. The real proxy, gate and database of
tests/proxy/test_shares.py (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time

import httpx
from sqlalchemy import select

from datalabs.db.models import AuditRecord
from datalabs.proxy.gate import GUEST_OPEN
from tests.proxy.test_shares import HTML, LAB_HOST, World, settled, world  # noqa: F401 (the fixture)


def guest_opens(w: World) -> list[tuple]:
    with w.sessions() as db:
        found = db.scalars(select(AuditRecord).where(AuditRecord.what == GUEST_OPEN).order_by(AuditRecord.id))
        return [(r.who, json.loads(r.target), r.detail, r.outcome, r.client) for r in found]


def enter(w: World, who: str) -> httpx.Response:
    with w.client(who, **HTML) as browser:
        return settled(browser, lambda r: r.status_code != 404)


def test_a_guests_entry_is_recorded_once_and_not_its_requests(world):  # noqa: F811
    owner = enter(world, "ada:session")
    assert owner.status_code == 303 and guest_opens(world) == []  # the owner is no guest
    with world.client("eve:session", **HTML) as eve:
        assert eve.get("/datalabs/lab1/echo").status_code == 404  # not shared with her
    assert guest_opens(world) == []

    world.share("bob", "view")
    r = enter(world, "bob:session")
    assert r.status_code == 303, r.text
    entry = ("bob", {"lab_id": "lab1"}, {"mode": "view", "owner": "ada"}, "303", "127.0.0.1")
    assert guest_opens(world) == [entry]

    location = httpx.URL(r.headers["location"])
    with httpx.Client(base_url=world.url, headers={"Host": LAB_HOST}, trust_env=False) as browser:
        cookie = browser.get(f"{location.path}?{location.query.decode()}").headers["set-cookie"].split(";")[0]
        for _ in range(5):
            assert browser.get("/datalabs/lab1/echo", headers={"Cookie": cookie}).status_code == 200
    with world.client("bob:token") as api:  # a script with a token: requests, not entries
        assert api.get("/datalabs/lab1/echo").status_code == 200
    assert guest_opens(world) == [entry]

    world.share("bob", "collaborate")  # in effect within the proxy's share cache (1 s)
    entries, deadline = 0, time.monotonic() + 5
    with world.client("bob:session", **HTML) as bob:
        while time.monotonic() < deadline:
            assert bob.get("/datalabs/lab1/echo").status_code == 303
            entries += 1
            if guest_opens(world)[-1][2]["mode"] == "collaborate":
                break
            time.sleep(0.05)
    records = guest_opens(world)
    assert len(records) == 1 + entries  # every entry is one record, in the mode it entered in
    assert records[-1][2] == {"mode": "collaborate", "owner": "ada"}
