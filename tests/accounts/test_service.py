import pytest

from datalabs.accounts import service
from datalabs.accounts.passwords import verify_password
from datalabs.errors import Conflict, Invalid, NotFound


def test_create_user_hashes_password_with_argon2(db):
    user = service.create_user(db, "ada", "long-enough-pw", email="ada@example.org")
    assert user.password_hash.startswith("$argon2")
    assert "long-enough-pw" not in user.password_hash
    assert verify_password("long-enough-pw", user.password_hash)
    assert not verify_password("wrong-password", user.password_hash)


@pytest.mark.parametrize("name", ["A", "ab cd", "../x", "x" * 40, "1abc", "", "ab/c", "é-user"])
def test_bad_user_names_are_rejected(db, name):
    with pytest.raises(Invalid, match="not valid"):
        service.create_user(db, name, "long-enough-pw")


def test_duplicate_user_conflicts(db):
    service.create_user(db, "ada", "long-enough-pw")
    with pytest.raises(Conflict):
        service.create_user(db, "ada", "another-password")


def test_weak_password_and_bad_role_and_email(db):
    with pytest.raises(Invalid, match="too short"):
        service.create_user(db, "ada", "short")
    with pytest.raises(Invalid, match="role"):
        service.create_user(db, "ada", "long-enough-pw", role="god")
    with pytest.raises(Invalid, match="e-mail"):
        service.create_user(db, "ada", "long-enough-pw", email="not-an-address")


def test_groups_and_membership_roles(db):
    service.create_user(db, "ada", "long-enough-pw")
    service.create_group(db, "astro", "FITS people")
    service.set_member(db, "astro", "ada", "owner")
    service.set_member(db, "astro", "ada", "readonly")  # idempotent: changes the role
    group = service.get_group(db, "astro")
    assert [(m.user.name, m.role) for m in group.memberships] == [("ada", "readonly")]
    assert service.user_groups(db, service.get_user(db, "ada").id) == ["astro"]
    with pytest.raises(Invalid):
        service.set_member(db, "astro", "ada", "boss")
    service.remove_member(db, "astro", "ada")
    with pytest.raises(NotFound):
        service.remove_member(db, "astro", "ada")
    with pytest.raises(NotFound):
        service.set_member(db, "nope", "ada")


def test_delete_user_cascades_memberships_and_refuses_self(db):
    admin = service.create_user(db, "root", "long-enough-pw", role="admin")
    service.create_user(db, "ada", "long-enough-pw")
    service.create_group(db, "astro")
    service.set_member(db, "astro", "ada")
    with pytest.raises(Conflict):
        service.delete_user(db, "root", acting=admin)
    service.delete_user(db, "ada", acting=admin)
    db.commit()
    assert service.get_group(db, "astro").memberships == []
    with pytest.raises(NotFound):
        service.get_user(db, "ada")
