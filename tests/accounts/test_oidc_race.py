"""Two first sign-ins of the same new person at once (two tabs, two replicas): both find no link and insert
the user; the loser's insert fails on the unique index once the winner commits, and it goes on with the
winner's rows (savepoint + re-read) instead of answering 500. On SQLite and PostgreSQL (db_url's
parameters), with two threads whose order is forced: the second reads before the first commits."""

from __future__ import annotations

import threading

from sqlalchemy import event, func, select

from datalabs.accounts import oidc_users
from datalabs.accounts.oidc_settings import OidcProvider
from datalabs.db.models import Group, Membership, OidcIdentity, User

PROVIDER = OidcProvider(
    name="op", issuer="https://op.example", client_id="dl", groups_claim="groups", group_prefix="dl-"
)
CLAIMS = {"iss": "https://op.example", "sub": "sub-nia", "preferred_username": "nia", "groups": ["dl-optics"]}


def test_the_loser_of_a_first_sign_in_race_goes_on_with_the_winners_user(sessions):
    engine = sessions.kw["bind"]
    loser_inserts, outcome = threading.Event(), {}
    # Where the loser meets the winner: SQLite's write lock (taken by sign_in's first statement, before it
    # looks for the link) or, on PostgreSQL, the unique index (it found no link and inserts the user).
    meets = "UPDATE OIDC_IDENTITIES" if engine.dialect.name == "sqlite" else "INSERT INTO USERS"

    def watch(conn, cursor, statement, *_):
        if threading.current_thread().name == "loser" and statement.lstrip().upper().startswith(meets):
            loser_inserts.set()

    event.listen(engine, "before_cursor_execute", watch)
    try:
        with sessions() as winner_db:
            winner = oidc_users.sign_in(winner_db, PROVIDER, CLAIMS)  # rows inserted, not committed yet

            def lose() -> None:
                with sessions() as db:
                    try:
                        user = oidc_users.sign_in(db, PROVIDER, CLAIMS)
                        db.commit()
                        outcome["user"] = user.id
                    except Exception as exc:  # what the callback would answer 500 for
                        outcome["error"] = repr(exc)
                        loser_inserts.set()

            thread = threading.Thread(target=lose, name="loser")
            thread.start()
            assert loser_inserts.wait(60), "the loser never tried to insert the user"
            winner_db.commit()  # the loser, waiting on SQLite's lock or PostgreSQL's index, goes on now
            thread.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert outcome == {"user": winner.id}
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(User).where(User.name == "nia")) == 1
        assert db.scalar(select(func.count()).select_from(OidcIdentity)) == 1
        teams = db.scalars(select(Group.name).join(Membership).where(Membership.user_id == winner.id)).all()
        assert teams == ["optics"]


def test_concurrent_first_sign_ins_of_one_person_all_get_one_user(sessions):
    """Four at once without a forced order: every one signs the same user in, none fails."""
    gate, results = threading.Barrier(4), []
    claims = {**CLAIMS, "sub": "sub-oz", "preferred_username": "oz", "groups": ["dl-radio"]}

    def sign_in() -> None:
        with sessions() as db:
            gate.wait()
            try:
                results.append(oidc_users.sign_in(db, PROVIDER, claims).id)
                db.commit()
            except Exception as exc:  # noqa: BLE001 (a 500 for the user)
                results.append(repr(exc))

    threads = [threading.Thread(target=sign_in) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and len(set(results)) == 1 and isinstance(results[0], int), results
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Group).where(Group.name == "radio")) == 1
