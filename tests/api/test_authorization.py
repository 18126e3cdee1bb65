"""Authorisation matrix: every API route, as anonymous, a plain user, a team member, a token with the
wrong scope, and an admin. A route missing from ROUTES fails `test_every_route_is_in_the_matrix`."""

import re

import pytest

from tests.api.authorization_rows import APP, PIPE, TINY_CWL, caller, platform, rows_for, settings_for

OK = "ok"  # any 2xx
# (method, path, json body, {who: expected status or OK}); `team-lab` is restricted to group `astro`.
ROUTES = [
    ("POST", "/api/v1/logout", {}, {"anonymous": 401, "user": OK, "admin": OK}),
    ("GET", "/api/v1/me", None, {"anonymous": 401, "user": OK, "member": OK, "admin": OK, "narrow": OK}),
    ("POST", "/api/v1/tokens", {"name": "t"}, {"anonymous": 401, "user": OK, "admin": OK, "narrow": 403}),
    ("GET", "/api/v1/tokens", None, {"anonymous": 401, "user": OK, "admin": OK, "narrow": 403}),
    (
        "DELETE",
        "/api/v1/tokens/{token_id}",
        None,
        {"anonymous": 401, "user": 404, "narrow": 403, "owner": OK},
    ),
    (
        "GET",
        "/api/v1/users",
        None,
        {"anonymous": 401, "user": 403, "member": 403, "admin": OK, "narrow": 403},
    ),
    (
        "POST",
        "/api/v1/users",
        {"name": "newbie", "password": "long-enough-pw"},
        {"anonymous": 401, "user": 403, "member": 403, "admin": OK},
    ),
    ("GET", "/api/v1/users/ada", None, {"anonymous": 401, "user": 403, "admin": OK}),
    (
        "PATCH",
        "/api/v1/users/ada",
        {"full_name": "Ada"},
        {"anonymous": 401, "user": 403, "member": 403, "admin": OK},
    ),
    ("DELETE", "/api/v1/users/ada", None, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    ("GET", "/api/v1/groups", None, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    (
        "POST",
        "/api/v1/groups",
        {"name": "newteam"},
        {"anonymous": 401, "user": 403, "member": 403, "admin": OK},
    ),
    ("GET", "/api/v1/groups/astro", None, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    ("DELETE", "/api/v1/groups/astro", None, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    (
        "PUT",
        "/api/v1/groups/astro/members/ada",
        {"role": "member"},
        {"anonymous": 401, "user": 403, "member": 403, "admin": OK},
    ),
    (
        "DELETE",
        "/api/v1/groups/astro/members/mia",
        None,
        {"anonymous": 401, "user": 403, "member": 403, "admin": OK},
    ),
    (
        "GET",
        "/api/v1/datalabs",
        None,
        {"anonymous": 401, "user": OK, "member": OK, "admin": OK, "narrow": 403},
    ),
    ("GET", "/api/v1/datalabs/topcat", None, {"anonymous": 401, "user": OK, "narrow": 403}),
    ("GET", "/api/v1/datalabs/team-lab", None, {"anonymous": 401, "user": 404, "member": OK, "admin": OK}),
    (
        "GET",
        "/api/v1/datalabs/team-lab/versions",
        None,
        {"anonymous": 401, "user": 404, "member": OK, "admin": OK},
    ),
    (
        "GET",
        "/api/v1/datalabs/team-lab/versions/1.0",
        None,
        {"anonymous": 401, "user": 404, "member": OK, "admin": OK},
    ),
    ("GET", "/api/v1/datalabs/topcat/thumbnail", None, {"anonymous": 401, "user": OK, "narrow": 403}),
    ("GET", "/api/v1/catalogue/problems", None, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    ("POST", "/api/v1/catalogue/reload", {}, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    ("GET", "/api/v1/catalogue/builds", None, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    (
        "POST",
        "/api/v1/datalabs/tiny/build",
        {},
        {"anonymous": 401, "user": 403, "member": 403, "narrow": 403, "admin": OK},
    ),
    ("GET", "/api/v1/datalabs/tiny/build", None, {"anonymous": 401, "user": 403, "member": 403, "admin": OK}),
    ("POST", "/api/v1/labs", {"datalab": "fake"}, {"anonymous": 401, "user": OK, "narrow": 403}),
    ("GET", "/api/v1/labs", None, {"anonymous": 401, "user": OK, "narrow": OK}),
    (
        "GET",
        "/api/v1/labs/{lab_id}",
        None,
        {"anonymous": 401, "user": 404, "member": 404, "owner": OK, "admin": OK},
    ),
    ("GET", "/api/v1/labs/{lab_id}/events", None, {"anonymous": 401, "user": 404, "owner": OK, "admin": OK}),
    ("GET", "/api/v1/labs/{lab_id}/logs", None, {"anonymous": 401, "user": 404, "owner": OK, "admin": OK}),
    ("POST", "/api/v1/labs/{lab_id}/stop", {}, {"anonymous": 401, "user": 404, "owner": OK, "admin": OK}),
    # A stopped lab (see test_route_authorisation); admins may stop and destroy it, not run it as its owner.
    (
        "POST",
        "/api/v1/labs/{lab_id}/restart",
        {},
        {"anonymous": 401, "user": 404, "member": 404, "owner": OK, "admin": 403, "narrow": 403},
    ),
    ("DELETE", "/api/v1/labs/{lab_id}", None, {"anonymous": 401, "user": 404, "owner": OK, "admin": OK}),
]
# Shares (issue 19): only the lab's owner (tess) sees or changes them; everyone else, the grantee (mia) and
# administrators included, gets 404 as for a lab that does not exist. The lab runs; DELETE finds a share.
SHARES_ONLY_OWNER = {"anonymous": 401, "user": 404, "member": 404, "owner": OK, "admin": 404, "narrow": 403}
ROUTES += [
    ("GET", "/api/v1/labs?shared=true", None, {"anonymous": 401, "user": OK, "member": OK, "narrow": OK}),
    ("GET", "/api/v1/labs/{lab_id}/shares", None, {**SHARES_ONLY_OWNER, "narrow": 404}),
    ("GET", "/api/v1/labs/{lab_id}/guests", None, {**SHARES_ONLY_OWNER, "narrow": 404}),
    ("PUT", "/api/v1/labs/{lab_id}/shares/mia", {"mode": "view"}, SHARES_ONLY_OWNER),
    ("PUT", "/api/v1/labs/{lab_id}/shares/team:astro", {"mode": "collaborate"}, SHARES_ONLY_OWNER),
    ("DELETE", "/api/v1/labs/{lab_id}/shares/mia", None, SHARES_ONLY_OWNER),
]
# Workspaces and volumes (issue 4): team `astro` has a workspace owned by tess (owner), mia is a member,
# val a read-only member ("reader"), ada is not in it; volume `Demo` is allowed to `astro` only. Team
# `optics` (tess owner, val read-only) has no workspace yet.
TEAM = "/api/v1/workspaces/team:astro"
TEAM_READ = {
    "anonymous": 401,
    "user": 404,
    "member": OK,
    "reader": OK,
    "owner": OK,
    "admin": OK,
    "narrow": 403,
}
TEAM_WRITE = {**TEAM_READ, "reader": 403}
ADMIN_ONLY = {"anonymous": 401, "user": 403, "member": 403, "owner": 403, "admin": OK, "narrow": 403}
ROUTES += [
    (
        "GET",
        "/api/v1/workspaces",
        None,
        {"anonymous": 401, "user": OK, "reader": OK, "admin": OK, "narrow": 403},
    ),
    (
        "POST",
        "/api/v1/workspaces",
        {"team": "optics"},
        {
            "anonymous": 401,
            "user": 404,
            "member": 404,
            "reader": 403,
            "owner": OK,
            "admin": OK,
            "narrow": 403,
        },
    ),
    ("GET", "/api/v1/workspaces/me", None, {"anonymous": 401, "user": OK, "admin": OK, "narrow": 403}),
    ("GET", TEAM, None, TEAM_READ),
    ("GET", f"{TEAM}/files/shared.txt", None, TEAM_READ),
    ("PUT", f"{TEAM}/files/new.txt", None, TEAM_WRITE),
    ("POST", f"{TEAM}/files/made", {"op": "mkdir"}, TEAM_WRITE),
    ("DELETE", f"{TEAM}/files/shared.txt", None, TEAM_WRITE),
    (
        "GET",
        "/api/v1/volumes",
        None,
        {"anonymous": 401, "user": OK, "member": OK, "admin": OK, "narrow": 403},
    ),
    ("POST", "/api/v1/volumes", {"name": "NewVolume", "host_path": "{volume_dir}"}, ADMIN_ONLY),
    ("GET", "/api/v1/volumes/Demo", None, {**TEAM_READ, "owner": OK}),
    ("POST", "/api/v1/volumes/Demo/harvest", None, ADMIN_ONLY),
    ("GET", "/api/v1/volumes/Demo/harvest", None, ADMIN_ONLY),
    ("DELETE", "/api/v1/volumes/Demo", None, ADMIN_ONLY),
    ("GET", "/api/v1/volumes/Demo/files/a.txt", None, TEAM_READ),
]
# Assets and STAC (issue 5): asset `Demo:a.txt` belongs to volume `Demo`, allowed to group `astro` only.
ASSET_READ = {"anonymous": 401, "user": OK, "member": OK, "admin": OK, "narrow": 403}
ASSET_OF_DEMO = {"anonymous": 401, "user": 404, "member": OK, "admin": OK, "narrow": 403}
ROUTES += [
    ("GET", "/api/v1/assets/search", None, ASSET_READ),
    ("GET", "/api/v1/assets/Demo:a.txt", None, ASSET_OF_DEMO),
    # Opening launches a lab of the caller with volume Demo: those allowed Demo (astro) may.
    (
        "POST",
        "/api/v1/assets/Demo:a.txt/open",
        {"datalab": "viewer"},
        {**ASSET_OF_DEMO, "reader": OK, "owner": OK},
    ),
    ("GET", "/stac", None, ASSET_READ),
    ("GET", "/stac/conformance", None, ASSET_READ),
    ("GET", "/stac/queryables", None, ASSET_READ),
    ("GET", "/stac/collections", None, ASSET_READ),
    ("GET", "/stac/collections/Demo", None, ASSET_OF_DEMO),
    ("GET", "/stac/collections/Demo/queryables", None, ASSET_OF_DEMO),
    ("GET", "/stac/collections/Demo/items", None, ASSET_OF_DEMO),  # an unseen collection: 404, as itself
    ("GET", "/stac/collections/Demo/items/Demo:a.txt", None, ASSET_OF_DEMO),
    ("GET", "/stac/search", None, ASSET_READ),
    ("POST", "/stac/search", {"collections": ["Demo"]}, ASSET_READ),
]
# Pipelines (issue 6): `private-pipe` is tess's, shared with group `astro` (mia); run and schedule are tess's.
PIPE_READ = {"anonymous": 401, "user": 404, "member": OK, "owner": OK, "admin": OK, "narrow": 403}
RUN_ONLY_OWNER = {"anonymous": 401, "user": 404, "member": 404, "owner": OK, "admin": OK, "narrow": 403}
ROUTES += [
    ("GET", "/api/v1/pipelines", None, ASSET_READ),
    ("POST", "/api/v1/pipelines", {"name": "new-pipe", "cwl": TINY_CWL}, ASSET_READ),
    ("POST", "/api/v1/pipelines/validate", {"cwl": TINY_CWL}, ASSET_READ),
    ("GET", PIPE, None, PIPE_READ),
    ("GET", f"{PIPE}/versions", None, PIPE_READ),
    ("POST", f"{PIPE}/versions", {"version": "2.0", "cwl": TINY_CWL}, {**PIPE_READ, "member": 403}),
    ("GET", f"{PIPE}/graph", None, PIPE_READ),
    ("GET", f"{PIPE}/code", None, PIPE_READ),
    ("POST", f"{PIPE}/runs", {}, PIPE_READ),
    ("GET", f"{PIPE}/schedules", None, PIPE_READ),
    ("POST", f"{PIPE}/schedules", {"cron": "0 3 * * *"}, PIPE_READ),
    ("DELETE", "/api/v1/schedules/{schedule_id}", None, RUN_ONLY_OWNER),
    ("GET", "/api/v1/runs", None, ASSET_READ),
    ("GET", "/api/v1/runs/{run_id}", None, RUN_ONLY_OWNER),
    ("GET", "/api/v1/runs/{run_id}/logs", None, RUN_ONLY_OWNER),
    ("GET", "/api/v1/runs/{run_id}/outputs", None, RUN_ONLY_OWNER),
    ("POST", "/api/v1/runs/{run_id}/cancel", {}, RUN_ONLY_OWNER),
]
# Triggers (issue 18): like schedules, a trigger is its owner's (tess's webhook trigger); its incoming hook
# takes no login, only a signature made with its secret (tests/security/test_trigger_hooks.py).
UNSIGNED = {"anonymous": 401, "user": 401, "member": 401, "owner": 401, "admin": 401, "narrow": 401}
ROUTES += [
    ("GET", f"{PIPE}/triggers", None, PIPE_READ),
    ("POST", f"{PIPE}/triggers", {"kind": "webhook"}, PIPE_READ),
    ("GET", "/api/v1/triggers/{trigger_id}", None, RUN_ONLY_OWNER),
    ("PATCH", "/api/v1/triggers/{trigger_id}", {"paused": True}, RUN_ONLY_OWNER),
    ("DELETE", "/api/v1/triggers/{trigger_id}", None, RUN_ONLY_OWNER),
    ("POST", "/api/v1/triggers/{trigger_id}/test", {}, RUN_ONLY_OWNER),
    ("POST", "/api/v1/triggers/{trigger_id}/hook", {}, UNSIGNED),
]
# Apps (issue 8): `tess-app` is tess's, shared with group `astro` (mia), with version 0.1.0-0 (build failed).
APP_READ = {"anonymous": 401, "user": 404, "member": OK, "owner": OK, "admin": OK, "narrow": 403}
APP_WRITE = {**APP_READ, "member": 403}
MODERATORS = {"anonymous": 401, "user": 403, "member": 403, "owner": 403, "narrow": 403}
ROUTES += [
    ("GET", "/api/v1/apps", None, ASSET_READ),
    ("POST", "/api/v1/apps", {"name": "new-app"}, ASSET_READ),
    ("GET", "/api/v1/apps/review-queue", None, {**MODERATORS, "admin": OK}),
    ("POST", "/api/v1/apps/import", {}, {"anonymous": 401, "user": 422, "narrow": 403}),
    ("GET", APP, None, APP_READ),
    ("DELETE", APP, None, APP_WRITE),
    ("POST", f"{APP}/versions", {}, {**APP_WRITE, "owner": 422, "admin": 422}),
    ("GET", f"{APP}/versions/0.1.0-0", None, APP_READ),
    ("GET", f"{APP}/versions/0.1.0-0/logs", None, APP_READ),
    ("GET", f"{APP}/versions/0.1.0-0/events", None, APP_READ),
    ("PUT", f"{APP}/share", {"groups": ["astro"]}, APP_WRITE),
    ("POST", f"{APP}/submit", {}, {**APP_WRITE, "owner": 409, "admin": 409}),
    ("POST", f"{APP}/review", {"decision": "approve"}, {**MODERATORS, "admin": 409}),
    ("POST", f"{APP}/unpublish", {}, {**APP_WRITE, "owner": 409, "admin": 409}),
    # One version: the same rules; 0.1.0-0 is not published (409), an unknown version is a 404.
    ("POST", f"{APP}/unpublish", {"version": "0.1.0-0"}, {**APP_WRITE, "owner": 409, "admin": 409}),
    ("POST", f"{APP}/unpublish", {"version": "9.9"}, {**APP_WRITE, "owner": 404, "admin": 404}),
    ("POST", f"{APP}/feature", {"featured": True}, {**MODERATORS, "admin": OK}),
    ("GET", f"{APP}/history", None, APP_READ),
    ("GET", f"{APP}/export", None, APP_WRITE),
    ("GET", "/api/v1/notices", None, ASSET_READ),
]
# Notifications (issue 15): everyone reads and marks only their own (tests/api/test_notifications.py
# names other users' notices); a token without the notifications scopes is refused.
MINE = {"anonymous": 401, "user": OK, "member": OK, "owner": OK, "admin": OK, "narrow": 403}
ROUTES += [
    ("GET", "/api/v1/notifications", None, MINE),
    ("POST", "/api/v1/notifications/read", {}, MINE),
    ("POST", "/api/v1/notifications/read", {"ids": [1, 2]}, MINE),
]
# Clusters (issue 16): the list is filtered to what the caller may use (tests/api/test_clusters.py); reading
# it takes the labs:read scope, which the narrow token holds.
ROUTES += [("GET", "/api/v1/clusters", None, {**MINE, "narrow": OK})]
# Usage (issue 16): everyone reads their own (tess is the "owner" of user=tess); other users', a group's
# and everyone's only administrators, not through a token without the admin scope (narrow).
NOT_ADMIN = {"anonymous": 401, "user": 403, "member": 403, "owner": 403, "narrow": 403}
ROUTES += [
    ("GET", "/api/v1/usage", None, {**MINE, "narrow": OK}),
    ("GET", "/api/v1/usage?user=tess", None, {**NOT_ADMIN, "owner": OK, "admin": OK}),
    ("GET", "/api/v1/usage?group=astro", None, {**NOT_ADMIN, "admin": OK}),
    ("GET", "/api/v1/usage?all=true", None, {**NOT_ADMIN, "admin": OK}),
]
# A Slurm lab's job reports its port with its own single-use token (tests/security/test_lab_callback.py):
# no session or user token opens it, the owner's and an administrator's included.
NOBODY_BUT_THE_JOB = {"anonymous": 401, "user": 401, "member": 401, "owner": 401, "admin": 401, "narrow": 403}
ROUTES += [("POST", "/api/v1/labs/{lab_id}/callback", {"port": 5000}, NOBODY_BUT_THE_JOB)]
# The audit log (issue 19): administrators only, a token without the admin scope (narrow) refused.
ROUTES += [
    ("GET", "/api/v1/audit", None, ADMIN_ONLY),
    ("GET", "/api/v1/audit.csv", None, ADMIN_ONLY),
    ("GET", "/api/v1/audit?who=root&limit=100000", None, ADMIN_ONLY),
]
PUBLIC = {("POST", "/api/v1/login"), ("GET", "/healthz"), ("GET", "/metrics")}


@pytest.fixture
def settings(tmp_path, db_url):
    return settings_for(tmp_path, db_url)


def test_every_route_is_in_the_matrix(app):
    covered = {(m, p.replace("{token_id}", "{token_id}")) for m, p, *_ in ROUTES} | PUBLIC
    covered = {(m, _template(p)) for m, p in covered}
    for path, methods in app.openapi()["paths"].items():
        for method in methods:
            assert (method.upper(), path) in covered, f"{method.upper()} {path} has no authorisation test"


def _template(path: str) -> str:
    path = re.sub(r"/files/.+$", "/files/{path}", path)
    path = re.sub(r"^/api/v1/workspaces/(me|team:[^/]+)", "/api/v1/workspaces/{ws}", path)
    path = re.sub(r"^/api/v1/volumes/Demo", "/api/v1/volumes/{name}", path)
    path = re.sub(r"^/api/v1/assets/Demo:[^/]*", "/api/v1/assets/{asset_id}", path)
    path = re.sub(
        r"^/stac/collections/Demo/items/.+", "/stac/collections/{collection_id}/items/{item_id}", path
    )
    path = re.sub(r"^/stac/collections/Demo", "/stac/collections/{collection_id}", path)
    replacements = {
        "/ada": "/{name}",
        "/astro": "/{group}",
        "/mia": "/{user}",
        "/topcat": "/{name}",
        "/team-lab": "/{name}",
        "/tiny/": "/{name}/",
        "/private-pipe": "/{name}",
        "/tess-app": "/{name}",
        "/0.1.0-0": "/{version}",
        "/1.0": "/{version}",
    }
    for concrete, template in replacements.items():
        path = path.replace(concrete, template)
    path = path.replace("/members/{name}", "/members/{user}")
    return re.sub(r"/shares/(\{user\}|team:[^/]+)$", "/shares/{grantee}", path)


@pytest.mark.parametrize(
    ("method", "path", "body", "expect"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES]
)
def test_route_authorisation(tmp_path, more_databases, method, path, body, expect):
    """The route as everyone in `expect`. A refusal changes nothing, so the refusals share one fresh
    platform, with the first allowed caller last; each further allowed change gets a platform of its own
    (tess's lab, deleted by its owner, is not there for the administrator)."""
    refused = [(who, want) for who, want in expect.items() if want != OK]
    allowed = [(who, want) for who, want in expect.items() if want == OK]
    batches = (
        [refused + allowed] if method == "GET" else [refused + allowed[:1]] + [[one] for one in allowed[1:]]
    )
    wrong = []
    for n, batch in enumerate(batches):
        with platform(tmp_path / f"platform{n}", more_databases()) as people:
            concrete, concrete_body = rows_for(people, method, path, body)
            for who, want in batch:
                client, headers = caller(people, who)
                r = client.request(method, concrete, json=concrete_body, headers=headers)
                if want == OK and not 200 <= r.status_code < 300:
                    wrong.append(f"as {who}: {r.status_code}, want 2xx: {r.text[:500]}")
                elif want != OK and (r.status_code != want or not r.json().get("error", {}).get("code")):
                    wrong.append(f"as {who}: {r.status_code}, want {want} with an error code: {r.text[:500]}")
    assert not wrong, f"{method} {path}\n" + "\n".join(wrong)
