"""web/forms.submit, the one way a page handles a form POST: the service call is committed and the browser
redirected with a flash message, or, refused, everything it wrote is rolled back and the page shown again.
Run against the real app's database and flash-cookie signing."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse

from datalabs.accounts import service as accounts
from datalabs.db.models import Group
from datalabs.errors import Conflict, DatalabsError
from datalabs.web import forms
from datalabs.web.render import FLASH_COOKIE, read_flash


@pytest.fixture
def request_(client) -> Request:
    return Request({"type": "http", "app": client.app, "headers": [], "method": "POST", "path": "/"})


def group_names(client) -> list[str]:
    with client.app.state.sessions() as db:
        return list(db.scalars(select(Group.name).order_by(Group.name)))


def refused_page(exc: DatalabsError) -> HTMLResponse:
    return HTMLResponse(f"again: {exc.message}", status_code=exc.status)


def test_done_commits_and_redirects_with_the_flash_message(client, request_):
    with client.app.state.sessions() as db:
        response = forms.submit(
            request_,
            db,
            lambda: accounts.create_group(db, "astro"),
            refused=refused_page,
            to="/admin/groups",
            done="Group 'astro' created.",
        )
        assert group_names(client) == ["astro"]  # committed: another session sees it at once
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/groups"
    cookie = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    flash_request = Request(
        {
            "type": "http",
            "app": client.app,
            "headers": [(b"cookie", f"{FLASH_COOKIE}={cookie}".encode())],
        }
    )
    assert read_flash(flash_request) == [{"kind": "ok", "message": "Group 'astro' created."}]


def test_a_refusal_rolls_back_what_the_action_wrote_and_shows_the_page_again(client, request_):
    def half_done():
        accounts.create_group(db, "written-then-refused")
        raise Conflict("that clashes", code="clash")

    with client.app.state.sessions() as db:
        response = forms.submit(request_, db, half_done, refused=refused_page, to="/x", done="never shown")
        assert list(db.scalars(select(Group.name))) == []  # rolled back, not merely never committed
    assert response.status_code == 409
    assert response.body == b"again: that clashes"
    assert "set-cookie" not in response.headers  # no flash message for what did not happen
    assert group_names(client) == []


def test_then_gets_the_action_result_after_the_commit(client, request_):
    seen = []

    def then(group):
        seen.append((group.name, group_names(client)))
        return HTMLResponse("made", status_code=201)

    with client.app.state.sessions() as db:
        response = forms.submit(
            request_, db, lambda: accounts.create_group(db, "team"), refused=refused_page, then=then
        )
    assert response.status_code == 201
    assert seen == [("team", ["team"])]  # already committed when `then` runs


def test_an_unexpected_error_is_not_shown_as_a_form_refusal(client, request_):
    def broken():
        accounts.create_group(db, "half")
        raise RuntimeError("a bug")

    with client.app.state.sessions() as db:
        with pytest.raises(RuntimeError):
            forms.submit(request_, db, broken, refused=refused_page, to="/x")
        db.rollback()
    assert group_names(client) == []


def test_shown_again_puts_the_message_where_the_form_is():
    calls = []

    def page(*, errors, status, form):
        calls.append((errors, status, form))
        return HTMLResponse("page", status_code=status)

    again = forms.shown_again(page, "create", form={"name": "x"})
    response = again(Conflict("group 'x' already exists"))
    assert response.status_code == 409
    assert calls == [({"create": "group 'x' already exists"}, 409, {"name": "x"})]
