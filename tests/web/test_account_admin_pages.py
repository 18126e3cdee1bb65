"""API token and administration pages, in process against the real app: forms, errors, permissions."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from datalabs.accounts import auth, service
from datalabs.db.engine import transaction
from datalabs.db.models import ApiToken, User
from tests.web.conftest import BAD_META, card_kinds

# ---- tokens -------------------------------------------------------------------------------------


def test_tokens_create_shows_secret_once_then_revoke(user, post_form):
    r = post_form(
        user,
        "/account/tokens",
        "/account/tokens",
        {"name": "laptop", "scopes": ["catalogue:read", "labs:write"], "expires_in": "2592000"},
    )
    assert r.status_code == 201
    secret = re.search(r'id="new-token"[^>]*value="(dl_[^"]+)"', r.text).group(1)
    assert "Copy it now, it will not be shown again." in r.text
    assert r.headers["cache-control"] == "no-store"
    # The secret works against the API, and is never shown again.
    me = user.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["scopes"] == ["catalogue:read", "labs:write"]
    listing = user.get("/account/tokens").text
    assert "laptop" in listing and secret not in listing and "catalogue:read" in listing
    with user.app.state.sessions() as db:
        token_id = db.scalar(select(ApiToken.id).where(ApiToken.name == "laptop"))
    r = post_form(user, "/account/tokens", f"/account/tokens/{token_id}/revoke", follow_redirects=False)
    assert r.status_code == 303
    page = user.get("/account/tokens").text
    assert "Token &#39;laptop&#39; revoked." in page and f'data-token="{token_id}"' not in page
    assert user.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_token_form_errors_are_shown_near_the_form(user, post_form):
    r = post_form(user, "/account/tokens", "/account/tokens", {"name": "", "scopes": ["all"]})
    assert r.status_code == 422 and "Token name must be 1-100 characters." in r.text
    r = post_form(user, "/account/tokens", "/account/tokens", {"name": "x"})
    assert r.status_code == 422 and "Choose at least one scope." in r.text


def test_cannot_revoke_someone_elses_token(client, make_user, login, post_form):
    make_user("alice")
    with transaction(client.app.state.sessions) as db:
        alice = service.get_user(db, "alice")
        token, _ = auth.create_token(db, client.app.state.settings, alice, "hers")
        token_id = token.id
    make_user("bob")
    login(client, "bob")
    r = post_form(client, "/account/tokens", f"/account/tokens/{token_id}/revoke")
    assert "does not exist" in r.text
    with client.app.state.sessions() as db:
        assert db.get(ApiToken, token_id).revoked_at is None


# ---- administration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/admin/users", "/admin/groups", "/admin/catalogue", "/admin/security", "/admin/users/bob/delete"],
)
def test_plain_users_get_403_on_admin_pages(user, path):
    r = user.get(path)
    assert r.status_code == 403
    assert "Not allowed" in r.text and "administrators only" in r.text.lower()


def test_plain_users_cannot_post_admin_forms(user, post_form):
    r = post_form(user, "/catalogue", "/admin/users", {"name": "mallory", "password": "long enough pw"})
    assert r.status_code == 403
    with user.app.state.sessions() as db:
        assert db.scalar(select(User).where(User.name == "mallory")) is None


def test_admin_creates_user_group_and_member(admin, post_form):
    r = post_form(
        admin,
        "/admin/users",
        "/admin/users",
        {"name": "carol", "password": "a long password", "role": "user", "email": "carol@example.org"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/users"
    users_page = admin.get("/admin/users").text
    assert "User &#39;carol&#39; created." in users_page and 'data-user="carol"' in users_page
    r = post_form(
        admin, "/admin/groups", "/admin/groups", {"name": "gaia-team", "description": "Gaia people"}
    )
    assert r.status_code == 200 and "Group &#39;gaia-team&#39; created." in r.text
    r = post_form(
        admin, "/admin/groups", "/admin/groups/gaia-team/members", {"user": "carol", "role": "owner"}
    )
    assert r.status_code == 200
    section = r.text[r.text.index('data-group="gaia-team"') :]
    assert 'data-member="carol"' in section and "owner" in section
    with admin.app.state.sessions() as db:
        group = service.get_group(db, "gaia-team")
        assert [(m.user.name, m.role) for m in group.memberships] == [("carol", "owner")]
    assert "gaia-team · owner" in admin.get("/admin/users").text


def test_admin_form_errors_are_shown_with_4xx(admin, post_form):
    r = post_form(admin, "/admin/users", "/admin/users", {"name": "ada", "password": "a long password"})
    assert r.status_code == 409 and "User &#39;ada&#39; already exists." in r.text
    assert 'value="ada"' in r.text  # the form keeps what was typed
    r = post_form(admin, "/admin/users", "/admin/users", {"name": "Bad Name", "password": "a long password"})
    assert r.status_code == 422 and "is not valid" in r.text
    r = post_form(admin, "/admin/groups", "/admin/groups/nogroup/members", {"user": "ada", "role": "member"})
    assert r.status_code == 404 and "No group &#39;nogroup&#39;." in r.text
    r = post_form(admin, "/admin/users", "/admin/users/ada/active", {"active": "0"})
    assert r.status_code == 409 and "cannot deactivate your own account" in r.text


def test_admin_changes_role_deactivates_and_deletes(admin, make_user, post_form):
    make_user("dave")
    r = post_form(admin, "/admin/users", "/admin/users/dave/role", {"role": "moderator"})
    assert r.status_code == 200 and "is now moderator" in r.text
    r = post_form(admin, "/admin/users", "/admin/users/dave/active", {"active": "0"})
    assert "deactivated" in r.text
    with admin.app.state.sessions() as db:
        dave = service.get_user(db, "dave")
        assert dave.role == "moderator" and dave.active is False
    confirm = admin.get("/admin/users/dave/delete")
    assert confirm.status_code == 200 and "Delete the user &#39;dave&#39;?" in confirm.text
    r = post_form(admin, "/admin/users/dave/delete", "/admin/users/dave/delete")
    assert "User &#39;dave&#39; deleted." in r.text and 'data-user="dave"' not in r.text


def test_admin_removes_member_and_deletes_group(admin, make_user, post_form):
    make_user("erin")
    with transaction(admin.app.state.sessions) as db:
        service.create_group(db, "team")
        service.set_member(db, "team", "erin")
    r = post_form(admin, "/admin/groups", "/admin/groups/team/members/erin/remove")
    assert "removed from" in r.text and 'data-member="erin"' not in r.text
    assert "Delete the group &#39;team&#39;" in admin.get("/admin/groups/team/delete").text
    r = post_form(admin, "/admin/groups", "/admin/groups/team/delete")
    assert "Group &#39;team&#39; deleted." in r.text and 'data-group="team"' not in r.text


def test_admin_catalogue_lists_rejected_files_and_reloads(admin, post_form, catalogue_dir):
    page = admin.get("/admin/catalogue").text
    table = page[page.index('id="problems-table"') :]
    assert str(catalogue_dir / "broken" / "datalab-meta.yml") in table
    assert "runtime.kind" in table and "web" in table and "desktop" in table
    assert "1 rejected definition file" in page
    (catalogue_dir / "broken" / "datalab-meta.yml").write_text(
        BAD_META.replace("spaceship", "desktop") + "  desktop: {command: [broken]}\n"
    )
    r = post_form(admin, "/admin/catalogue", "/admin/catalogue/reload")
    assert r.status_code == 200 and "every definition file is valid" in r.text
    assert 'id="problems-table"' not in r.text
    assert "broken" in card_kinds(admin.get("/catalogue").text)


def test_admin_security_page_says_what_this_host_enforces_and_how_it_was_checked(admin):
    """Issue 13: network namespaces, pids, seccomp, quotas and origins, each with how it was checked."""
    page = admin.get("/admin/security").text
    table = page[page.index('id="security-table"') :]
    for protection in (
        "Sandboxes (bubblewrap)",
        "A uid per user",
        "Seccomp filter",
        "No user namespaces inside",
        "A network namespace per lab",
        "Process limit per sandbox (pids)",
        "CPU and memory limits",
        "Workspace quotas inside labs",
        "A web origin per lab",
    ):
        assert protection in table, protection
    # checked from inside a trial sandbox at start-up, not assumed
    assert "Seccomp mode 2" in table and "unshare(CLONE_NEWUSER): Operation not permitted" in table
    assert "interfaces [&#39;lo&#39;]" in table


def test_admin_security_page_says_how_workspace_quotas_hold(admin):
    """Issue 13, finding 7: which of project quotas and the platform's check is in force, and why."""
    page = admin.get("/admin/security").text
    assert "Workspace quotas are enforced by the kernel" in page or "platform&#39;s check" in page
    assert "prjquota" in page or "has no project quotas" in page  # how it was established
