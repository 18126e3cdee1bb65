"""Privileged copies out of a workspace (issue 13, Build item 1): building a datalab from a workspace folder
copies it as root, while the owner's lab can change that folder at any moment. A folder swapped for a link
after the platform checked it must not make root copy what the link points at (here: another user's
workspace), and links inside are refused, never followed."""

from __future__ import annotations

import shutil

import pytest

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import get_user
from datalabs.builder import origins
from datalabs.builder.sources import Staging
from datalabs.errors import Invalid


def put(client, path: str, data: bytes) -> None:
    assert client.put(f"/api/v1/workspaces/me/files/{path}", content=data).status_code == 201


@pytest.fixture
def ada_and_bob(app, people, settings):
    people.user("ada")
    people.user("bob")
    put(people.login("bob"), "private/notes.txt", b"bob-private-notes")
    ada = people.login("ada")
    put(ada, "app/datalab-meta.yml", b"title: Mine\n")
    with app.state.sessions() as db:
        yield db, Principal(user=get_user(db, "ada"), groups=frozenset())


def test_a_folder_swapped_for_a_link_after_the_check_is_not_followed(ada_and_bob, settings, tmp_path):
    db, ada = ada_and_bob
    fill = origins.from_workspace(db, settings, ada, "me", "app")  # checked now: a real folder
    workspace = settings.home / "workspaces/users/ada"
    shutil.rmtree(workspace / "app")
    (workspace / "app").symlink_to(settings.home / "workspaces/users/bob/private")  # what a lab can do
    staging = Staging(tmp_path / "staging")
    with pytest.raises(Invalid):
        fill(staging)
    copied = [p.read_bytes() for p in staging.root.rglob("*") if p.is_file()]
    assert b"bob-private-notes" not in b"".join(copied)


def test_links_inside_the_folder_are_refused(ada_and_bob, settings, tmp_path):
    db, ada = ada_and_bob
    workspace = settings.home / "workspaces/users/ada"
    (workspace / "app" / "theirs").symlink_to(settings.home / "workspaces/users/bob/private")
    fill = origins.from_workspace(db, settings, ada, "me", "app")
    staging = Staging(tmp_path / "staging")
    with pytest.raises(Invalid, match="symbolic link"):
        fill(staging)
    assert not (staging.root / "theirs").exists()
