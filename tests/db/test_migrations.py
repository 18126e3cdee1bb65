from sqlalchemy import inspect

from datalabs.db.engine import make_engine, migrate
from datalabs.db.models import Base


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
