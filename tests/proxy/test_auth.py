"""The platform authenticator (real SQLite DB, real sessions and tokens) and the default owner rule."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

import pytest
from sqlalchemy import event

from datalabs.accounts import auth, service
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.proxy import Route, make_authenticator, owner_only
from datalabs.proxy.auth import credential


@pytest.fixture
def platform(tmp_path, sqlite_template):
    path = tmp_path / "datalabs.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(home=tmp_path / "home", db={"url": f"sqlite:///{path}"}, auth={"secret_key": "k"})
    engine, sessions = open_database(settings.database_url)
    queries: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: queries.append(args[2]))
    with transaction(sessions) as db:
        ada = service.create_user(db, "ada", "long-enough-pw")
        cookie = auth.start_session(db, settings, ada)
        token_row, token = auth.create_token(db, settings, ada, "lab access")
        _, narrow = auth.create_token(db, settings, ada, "read only", scopes=["labs:read"])
    yield sessions, queries, {"cookie": cookie, "token": token, "token_id": token_row.id, "narrow": narrow}
    engine.dispose()


def http_scope(*headers: tuple[bytes, bytes]) -> dict:
    return {"type": "http", "headers": list(headers)}


def bearer(token: str) -> dict:
    return http_scope((b"authorization", f"Bearer {token}".encode()))


def test_session_cookie_and_token_authenticate_and_are_cached(platform):
    sessions, queries, creds = platform
    authenticate = make_authenticator(sessions, ttl=60)

    async def scenario():
        by_cookie = await authenticate(
            http_scope((b"cookie", f"a=1; datalabs_session={creds['cookie']}".encode()))
        )
        by_token = await authenticate(bearer(creds["token"]))
        queries.clear()
        again = [await authenticate(bearer(creds["token"])) for _ in range(20)]
        return by_cookie, by_token, again

    by_cookie, by_token, again = asyncio.run(scenario())
    assert by_cookie.user.name == by_token.user.name == "ada"
    assert by_token.via == "token"
    assert all(p is by_token for p in again)
    assert queries == []  # served from the cache: the hot path does not touch the database


def test_bad_or_missing_credentials_give_none(platform):
    sessions, _, _ = platform
    authenticate = make_authenticator(sessions)

    async def scenario():
        return [
            await authenticate(http_scope()),
            await authenticate(bearer("dl_forged")),
            await authenticate(http_scope((b"cookie", b"datalabs_session=forged"))),
            await authenticate(http_scope((b"authorization", b"token jupyter-style"))),
        ]

    assert asyncio.run(scenario()) == [None, None, None, None]


def test_revoked_token_stops_working_after_the_cache_ttl(platform):
    sessions, _, creds = platform
    authenticate = make_authenticator(sessions, ttl=0.3)

    async def scenario():
        principal = await authenticate(bearer(creds["token"]))
        with transaction(sessions) as db:
            auth.revoke_token(db, principal, creds["token_id"])
        cached = await authenticate(bearer(creds["token"]))
        await asyncio.sleep(0.35)
        return principal, cached, await authenticate(bearer(creds["token"]))

    principal, cached, after = asyncio.run(scenario())
    assert principal is not None and cached is principal  # within the TTL the cached answer stands
    assert after is None


def test_zero_ttl_does_not_cache(platform):
    sessions, queries, creds = platform
    authenticate = make_authenticator(sessions, ttl=0)

    async def scenario():
        await authenticate(bearer(creds["token"]))
        queries.clear()
        await authenticate(bearer(creds["token"]))

    asyncio.run(scenario())
    assert queries


def test_concurrent_requests_share_one_lookup(platform):
    sessions, queries, creds = platform
    authenticate = make_authenticator(sessions, ttl=60)
    scope = http_scope((b"cookie", f"datalabs_session={creds['cookie']}".encode()))

    async def scenario():
        queries.clear()
        return await asyncio.gather(*(authenticate(scope) for _ in range(30)))

    principals = asyncio.run(scenario())
    assert {p.user.name for p in principals} == {"ada"}
    assert len(queries) <= 3  # one lookup (session + groups), not thirty


def test_owner_only_needs_the_owner_and_a_lab_scope_for_tokens(platform):
    sessions, _, creds = platform
    authenticate = make_authenticator(sessions)
    lab = Route("l1", "ada", socket="/s")

    async def scenario():
        return (
            await authenticate(http_scope((b"cookie", f"datalabs_session={creds['cookie']}".encode()))),
            await authenticate(bearer(creds["token"])),
            await authenticate(bearer(creds["narrow"])),
        )

    session, full, narrow = asyncio.run(scenario())
    assert owner_only(session, lab) and owner_only(full, lab)
    assert not owner_only(narrow, lab)  # labs:read may not run code in the lab
    assert not owner_only(session, Route("l2", "bob", socket="/s"))


@dataclass
class _User:
    name: str


@dataclass
class _Principal:
    user: _User


def test_owner_only_accepts_any_principal_like_object():
    assert owner_only(_Principal(_User("ada")), Route("l1", "ada", socket="/s"))


def test_credential_parsing():
    assert credential(bearer("abc")) == ("token", "abc")
    assert credential(http_scope((b"cookie", b'x=1; datalabs_session="v"'))) == ("session", "v")
    assert credential(http_scope((b"authorization", b"Basic Zm9v"), (b"cookie", b"datalabs_session=v"))) == (
        "session",
        "v",
    )
    assert credential(http_scope((b"cookie", b"datalabs_session="))) is None


def test_cache_is_bounded(platform):
    sessions, _, creds = platform
    authenticate = make_authenticator(sessions, ttl=60)
    authenticate.max_entries = 2

    async def scenario():
        for value in (creds["token"], creds["narrow"]):
            await authenticate(bearer(value))
        await authenticate(http_scope((b"cookie", f"datalabs_session={creds['cookie']}".encode())))

    asyncio.run(scenario())
    assert len(authenticate._cache) <= 2
