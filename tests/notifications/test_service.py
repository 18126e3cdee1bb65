"""Notices on SQLite and PostgreSQL: written by services, read and marked read only by their user."""

from __future__ import annotations

import pytest

from datalabs.accounts import service as accounts
from datalabs.errors import NotFound
from datalabs.notifications import service as notifications


@pytest.fixture
def two(db):
    ada = accounts.create_user(db, "ada", "correct-horse-battery")
    bob = accounts.create_user(db, "bob", "correct-horse-battery")
    db.commit()
    return ada, bob


def test_newest_first_paged_with_the_unread_count(db, two):
    ada, bob = two
    for i in range(5):
        notifications.add(db, ada.id, f"note {i}", f"/runs/r{i}")
    notifications.add(db, bob.id, "bob's", "/labs")
    db.commit()
    first = notifications.page(db, ada.id, limit=2)
    assert [n.text for n in first.items] == ["note 4", "note 3"]
    assert (first.total, first.unread) == (5, 5)
    assert [n.text for n in notifications.page(db, ada.id, limit=2, offset=4).items] == ["note 0"]
    assert notifications.unread_count(db, bob.id) == 1


def test_marking_read_touches_only_the_callers_notices(db, two):
    ada, bob = two
    mine = [notifications.add(db, ada.id, f"a{i}") for i in range(3)]
    theirs = notifications.add(db, bob.id, "b")
    db.commit()
    # Bob names Ada's notices (and one of his own): only his changes.
    assert notifications.mark_read(db, bob.id, [mine[0].id, mine[1].id, theirs.id]) == 1
    assert notifications.unread_count(db, ada.id) == 3
    assert notifications.mark_read(db, ada.id, [mine[0].id]) == 1
    assert notifications.mark_read(db, ada.id, [mine[0].id]) == 0  # already read
    assert notifications.mark_read(db, ada.id, []) == 0
    assert notifications.mark_read(db, ada.id) == 2  # all the rest
    db.commit()
    assert notifications.unread_count(db, ada.id) == 0
    assert all(n.read_at is not None for n in notifications.page(db, ada.id).items)


def test_following_a_notice_marks_it_read_and_never_leaves_the_platform(db, two):
    ada, bob = two
    run = notifications.add(db, ada.id, "run ended", "/runs/abc")
    nowhere = notifications.add(db, ada.id, "no link")
    db.commit()
    with pytest.raises(NotFound):
        notifications.follow(db, bob.id, run.id)  # another user's: as if it did not exist
    assert notifications.unread_count(db, ada.id) == 2
    assert notifications.follow(db, ada.id, run.id) == "/runs/abc"
    assert notifications.follow(db, ada.id, nowhere.id) == "/notifications"
    db.commit()
    assert notifications.unread_count(db, ada.id) == 0


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "runs/x",
        "/a\r\nb",
    ],
)
def test_links_elsewhere_are_dropped(db, two, link):
    ada, _ = two
    notice = notifications.add(db, ada.id, "x", link)
    db.commit()
    assert notice.link == ""
    assert notifications.follow(db, ada.id, notice.id) == "/notifications"
