from __future__ import annotations

from sqlalchemy import update

from datalabs.audit import chain
from datalabs.db.models import AuditRecord


def _fill(db, n=5):
    return [chain.append(db, who="ann", what=f"POST /x/{i}", outcome="200").id for i in range(n)]


def test_a_clean_chain_verifies(app):
    with app.state.sessions() as db:
        _fill(db)
        db.commit()
        assert chain.verify(db) is None


def test_values_longer_than_their_columns_are_cut_not_refused(app):
    with app.state.sessions() as db:
        rec = chain.append(
            db, who="w" * 300, what="POST /" + "x" * 300, outcome="2" * 40, target="t" * 600, client="c" * 99
        )
        db.commit()
        got = (len(rec.who), len(rec.what), len(rec.outcome), len(rec.target), len(rec.client))
        assert got == (128, 200, 32, 500, 64)
        short = chain.append(db, who=None, what="POST /y", outcome="200")
        db.commit()
        assert (short.who, short.target, short.client, short.what) == (None, None, None, "POST /y")
        assert chain.verify(db) is None


def test_edit_delete_and_reorder_are_detected(app):
    with app.state.sessions() as db:
        ids = _fill(db)
        db.commit()
        db.execute(update(AuditRecord).where(AuditRecord.id == ids[2]).values(who="eve"))
        broken = chain.verify(db)
        assert broken is not None and broken.id == ids[2] and "edited" in broken.why
        db.rollback()
        db.execute(AuditRecord.__table__.delete().where(AuditRecord.id == ids[2]))
        broken = chain.verify(db)
        assert broken is not None and broken.id == ids[3]
        db.rollback()
        a, b = db.get(AuditRecord, ids[1]), db.get(AuditRecord, ids[2])
        fa = {k: getattr(a, k) for k in ("who", "what", "outcome", "prev_hash", "hash")}
        for k in fa:
            setattr(a, k, getattr(b, k))
            setattr(b, k, fa[k])
        db.flush()
        assert chain.verify(db) is not None


def test_prune_keeps_the_chain_verifiable(app):
    with app.state.sessions() as db:
        _fill(db, 3)
        db.commit()
        assert chain.prune(db, 365) == 0
        assert chain.prune(db, 0) == 3
        db.commit()
        assert chain.verify(db) is None
        _fill(db, 2)
        db.commit()
        assert chain.verify(db) is None


def test_concurrent_appends_never_fork_the_chain(app):
    import threading

    sessions = app.state.sessions
    with sessions() as db:
        _fill(db, 1)
        db.commit()

    def work():
        for _ in range(10):
            with sessions() as db:
                chain.append(db, who="bob", what="POST /y", outcome="200")
                db.commit()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as db:
        assert db.query(AuditRecord).count() == 41
        assert chain.verify(db) is None


def test_first_appends_without_a_head_row_never_fork(app):
    """Migration 0018 inserts the head row; a database without it gets it once, even when appends race."""
    import threading

    from datalabs.db.models import AuditHead

    sessions = app.state.sessions
    with sessions() as db:
        assert db.get(AuditHead, 1) is not None  # from the migration
        db.execute(AuditHead.__table__.delete())
        db.commit()
    start = threading.Barrier(4)
    errors = []

    def work():
        start.wait()
        try:
            with sessions() as db:
                chain.append(db, who="bob", what="POST /z", outcome="200")
                db.commit()
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as db:
        assert db.query(AuditRecord).count() == 4 and db.query(AuditHead).count() == 1
        assert chain.verify(db) is None
