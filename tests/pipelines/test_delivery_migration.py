"""Revision 0014 (delivery keys) goes up and down on SQLite and PostgreSQL: the key's index is unique,
the columns of the effectively-once deliveries appear and go again."""

from __future__ import annotations

from sqlalchemy import inspect

from datalabs.db.engine import make_engine, migrate
from tests.db.test_migrations import _downgrade, _upgrade, empty_db_url  # noqa: F401 (a fixture)

ADDED = {"key", "sender", "lease_until", "attempts"}


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("run_notifications")}


def test_0014_adds_unique_delivery_keys_and_goes_down_again(empty_db_url):  # noqa: F811
    engine = make_engine(empty_db_url)
    _upgrade(engine, "0013")
    assert not ADDED & _columns(engine)
    migrate(engine)
    assert _columns(engine) >= ADDED
    indexes = {i["name"]: i for i in inspect(engine).get_indexes("run_notifications")}
    assert indexes["ix_run_notifications_key"]["unique"]
    assert indexes["ix_run_notifications_state_lease"]["column_names"] == ["state", "lease_until"]
    _downgrade(engine, "0013")
    assert not ADDED & _columns(engine)
    migrate(engine)
    assert _columns(engine) >= ADDED
    engine.dispose()
