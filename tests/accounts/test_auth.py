from datetime import timedelta

import pytest

from datalabs.accounts import auth, service
from datalabs.db.models import ApiToken
from datalabs.db.types import utcnow
from datalabs.errors import Forbidden, Invalid, TooManyRequests, Unauthorized


@pytest.fixture
def ada(db):
    user = service.create_user(db, "ada", "long-enough-pw")
    db.commit()
    return user


def test_wrong_password_and_unknown_user_give_the_same_error(db, settings, ada):
    with pytest.raises(Unauthorized) as wrong:
        auth.authenticate(db, settings, "ada", "nope-nope-nope")
    with pytest.raises(Unauthorized) as unknown:
        auth.authenticate(db, settings, "nobody", "nope-nope-nope")
    assert wrong.value.message == unknown.value.message == auth.BAD_LOGIN


def test_repeated_failures_throttle_that_client_not_the_account(db, settings, ada):
    for _ in range(settings.auth.throttle_failures):
        with pytest.raises(Unauthorized):
            auth.authenticate(db, settings, "ada", "wrong-password", "10.0.0.1")
    with pytest.raises(TooManyRequests) as throttled:  # even the right password: no guessing oracle
        auth.authenticate(db, settings, "ada", "long-enough-pw", "10.0.0.1")
    assert throttled.value.retry_after == 1  # the first wait is short, and grows with more failures
    # ada herself, from another client, is not affected
    assert auth.authenticate(db, settings, "ada", "long-enough-pw", "10.0.0.2").name == "ada"


def test_throttle_delay_doubles_past_the_free_attempts_up_to_the_window(settings):
    free = settings.auth.throttle_failures
    delays = [auth.throttle_delay(settings, n, free) for n in range(free + 12)]
    assert delays[:free] == [0.0] * free
    assert delays[free : free + 4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == settings.auth.throttle_window


def test_success_resets_the_counter_of_that_client_and_name(db, settings, ada):
    for _ in range(settings.auth.throttle_failures - 1):
        with pytest.raises(Unauthorized):
            auth.authenticate(db, settings, "ada", "wrong-password")
    auth.authenticate(db, settings, "ada", "long-enough-pw")
    with pytest.raises(Unauthorized):
        auth.authenticate(db, settings, "ada", "wrong-password")
    assert auth.authenticate(db, settings, "ada", "long-enough-pw")


def test_inactive_user_cannot_log_in(db, settings, ada):
    service.update_user(db, "ada", active=False)
    db.commit()
    with pytest.raises(Unauthorized):
        auth.authenticate(db, settings, "ada", "long-enough-pw")


def test_sessions_resolve_until_ended(db, settings, ada):
    value = auth.start_session(db, settings, ada)
    db.commit()
    principal = auth.principal_from_session(db, value)
    assert principal.name == "ada" and principal.via == "session"
    assert auth.principal_from_session(db, value + "x") is None
    auth.end_session(db, value)
    db.commit()
    assert auth.principal_from_session(db, value) is None


def test_expired_session_is_rejected(db, settings, ada):
    settings.auth.session_ttl = -1
    value = auth.start_session(db, settings, ada)
    db.commit()
    assert auth.principal_from_session(db, value) is None


def test_tokens_are_stored_hashed_scoped_and_revocable(db, settings, ada):
    token, secret = auth.create_token(db, settings, ada, "laptop", ["catalogue:read"], 3600)
    db.commit()
    assert db.get(ApiToken, token.id).token_hash != secret and secret not in token.token_hash
    principal = auth.principal_from_token(db, secret)
    assert principal.scopes == {"catalogue:read"}
    principal.require("catalogue:read")
    with pytest.raises(Forbidden):
        principal.require("labs:read")
    with pytest.raises(Forbidden):
        auth.require_full_access(principal)
    auth.revoke_token(db, auth.principal_from_token(db, secret), token.id)
    db.commit()
    assert auth.principal_from_token(db, secret) is None


def test_expired_token_is_rejected(db, settings, ada):
    token, secret = auth.create_token(db, settings, ada, "old", None, 60)
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    assert auth.principal_from_token(db, secret) is None


@pytest.mark.parametrize(
    ("name", "scopes", "expires", "match"),
    [("", None, None, "name"), ("t", ["root"], None, "unknown scope"), ("t", None, 5, "expires_in")],
)
def test_bad_token_requests(db, settings, ada, name, scopes, expires, match):
    with pytest.raises(Invalid, match=match):
        auth.create_token(db, settings, ada, name, scopes, expires)


def test_write_scope_implies_read():
    from datalabs.accounts.scopes import grants

    assert grants(frozenset({"labs:write"}), "labs:read")
    assert not grants(frozenset({"labs:read"}), "labs:write")
    assert grants(frozenset({"all"}), "admin")


def test_csrf_tokens_are_bound_to_the_session(settings):
    token = auth.csrf_token(settings, "session-a")
    assert auth.check_csrf(settings, "session-a", token)
    assert not auth.check_csrf(settings, "session-b", token)
    assert not auth.check_csrf(settings, "session-a", None)
