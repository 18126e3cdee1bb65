import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from datalabs.accounts.principal import Principal
from datalabs.catalogue.search import Catalogue
from datalabs.db.engine import MIGRATIONS, make_engine, make_sessionmaker, migrate
from datalabs.db.models import Base, User
from datalabs.notifications import service as notifications

_counter = itertools.count()


def test_migrations_build_the_model_schema_and_are_idempotent(db_url):
    engine = make_engine(db_url)
    migrate(engine)  # already at head (template): a no-op
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request, tmp_path) -> Iterator[str]:
    """A database with no schema at all (unlike `db_url`, which is migrated to the newest version)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"old{os.getpid()}_{next(_counter)}"
    server.execute(f"CREATE DATABASE {name}")
    yield server.url(name)
    server.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _upgrade(engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _access(public: bool, review: bool = False) -> dict:
    return {"owner": "ada", "public": public, "review": review, "users": [], "groups": []}


def test_0006_publishes_only_the_reviewed_version_of_apps_from_0005(empty_db_url):
    """Under 0005 an approved app made all its built versions public. After 0006 only the version the
    moderator reviewed is published, in the app tables and in the catalogue's copies."""
    engine = make_engine(empty_db_url)
    _upgrade(engine, "0005")
    now = datetime.now(UTC)
    old = sa.MetaData()
    old.reflect(engine)
    t = old.tables

    def meta(name: str, version: str) -> dict:
        return {"name": name, "version": version, "title": name, "runtime": {"kind": "web", "command": ["x"]}}

    with engine.begin() as conn:
        conn.execute(t["counters"].insert(), [{"name": "catalogue", "value": 5}])
        conn.execute(
            t["users"].insert(),
            [
                {"id": 1, "name": "ada", "email": "", "full_name": "", "role": "user", "password_hash": "x"}
                | {"active": True, "created_at": now},
                {"id": 2, "name": "bob", "email": "", "full_name": "", "role": "user", "password_hash": "x"}
                | {"active": True, "created_at": now},
            ],
        )
        apps = [("pub", "published", "0.1.0-0"), ("rev", "submitted", "0.2.0-0")]
        conn.execute(
            t["apps"].insert(),
            [
                {"id": i, "name": n, "owner_id": 1, "base": "jupyterlab", "builder": "uv", "state": s}
                | {"shared_users": [], "shared_groups": [], "featured": False, "submitted_version": v}
                | {"created_at": now}
                for i, (n, s, v) in enumerate(apps, 1)
            ],
        )
        versions = [(1, "0.1.0-0"), (1, "0.1.0-1"), (2, "0.2.0-0")]
        conn.execute(
            t["app_versions"].insert(),
            [
                {"id": i, "app_id": a, "version": v, "source_kind": "upload", "source_ref": "", "meta": {}}
                | {"sources_path": "", "requirements": [], "env_key": "", "env_path": "", "state": "built"}
                | {"error": "", "cached": False, "created_by": "ada", "created_at": now}
                for i, (a, v) in enumerate(versions, 1)
            ],
        )
        conn.execute(
            t["datalabs"].insert(),
            [
                {"id": 1, "name": "pub", "source": "db", "created_at": now},
                {"id": 2, "name": "rev", "source": "db", "created_at": now},
                {"id": 3, "name": "plain", "source": "dir", "created_at": now},
            ],
        )
        copies = [
            (1, "0.1.0-0", {**meta("pub", "0.1.0-0"), "_app": _access(True)}),  # 0005: all public
            (1, "0.1.0-1", {**meta("pub", "0.1.0-1"), "_app": _access(True)}),
            (2, "0.2.0-0", {**meta("rev", "0.2.0-0"), "_app": _access(False, review=True)}),
            (3, "1.0", meta("plain", "1.0")),
        ]
        conn.execute(
            t["datalab_versions"].insert(),
            [
                {"datalab_id": d, "version": v, "meta": m, "source_path": "", "created_at": now}
                for d, v, m in copies
            ],
        )

    migrate(engine)  # 0005 -> newest

    with engine.connect() as conn:
        published = conn.execute(sa.text("SELECT version, published FROM app_versions ORDER BY id")).all()
        assert [(v, bool(p)) for v, p in published] == [
            ("0.1.0-0", True),
            ("0.1.0-1", False),
            ("0.2.0-0", False),
        ]
        copies = {
            v: m
            for v, m in conn.execute(sa.select(t["datalab_versions"].c.version, t["datalab_versions"].c.meta))
        }
        assert copies["0.1.0-0"]["_app"] == _access(True)
        assert copies["0.1.0-1"]["_app"] == _access(False)
        assert copies["0.2.0-0"]["_app"] == _access(False, review=True)
        assert copies["1.0"] == meta("plain", "1.0")  # definitions from files are not touched
        assert conn.scalar(sa.text("SELECT value FROM counters WHERE name = 'catalogue'")) == 6

    # What the catalogue now shows another user: the reviewed version alone.
    with make_sessionmaker(engine)() as db:
        bob = Principal(user=db.get(User, 2), groups=frozenset())
        catalogue = Catalogue()
        assert catalogue.get(db, bob, "pub").versions == ["0.1.0-0"]
        assert [e.name for e in catalogue.visible(db, bob)] == ["plain", "pub"]
    engine.dispose()


def _downgrade(engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0009_adds_delivery_records_and_the_unread_index_keeping_notices(empty_db_url):
    """Notices written under 0008 are still there, unread, after 0009; run_notifications exists with its
    run index; 0009 goes down and up again."""
    engine = make_engine(empty_db_url)
    _upgrade(engine, "0008")
    now = datetime.now(UTC)
    old = sa.MetaData()
    old.reflect(engine)
    t = old.tables
    with engine.begin() as conn:
        conn.execute(
            t["users"].insert(),
            [
                {"id": 1, "name": "ada", "email": "", "full_name": "", "role": "user", "password_hash": "x"}
                | {"active": True, "created_at": now}
            ],
        )
        conn.execute(
            t["notices"].insert(),
            [
                {"user_id": 1, "text": f"review {i}", "link": "/appstore/x", "created_at": now}
                for i in range(3)
            ],
        )

    migrate(engine)  # 0008 -> newest

    found = inspect(engine)
    assert {"user_id", "read_at"} == set(
        next(i["column_names"] for i in found.get_indexes("notices") if i["name"] == "ix_notices_user_unread")
    )
    assert any(i["name"] == "ix_run_notifications_run_id" for i in found.get_indexes("run_notifications"))
    with make_sessionmaker(engine)() as db:
        assert notifications.unread_count(db, 1) == 3
    _downgrade(engine, "0008")
    assert "run_notifications" not in inspect(engine).get_table_names()
    migrate(engine)
    assert "run_notifications" in inspect(engine).get_table_names()
    engine.dispose()


def test_the_migrations_build_exactly_the_models_columns_indexes_and_keys(db_url):
    """Alembic's own comparison of the migrated database with the models: a model changed without its
    migration (or a migration that differs from its model) shows up here, on SQLite and PostgreSQL."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(db_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()

    # Column changes come as lists of tuples; FLOAT in a migration and Double in a model are one 8-byte REAL.
    flat = [d for diff in diffs for d in (diff if isinstance(diff, list) else [diff])]
    same_floats = [d for d in flat if d[0] == "modify_type" and all(isinstance(t, sa.Float) for t in d[-2:])]
    assert [d for d in flat if d not in same_floats] == []
