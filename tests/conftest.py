"""Shared fixtures. DB-facing tests run against SQLite and PostgreSQL (the `db_url` fixture).

PostgreSQL is started privately for the session when its binaries are installed (`make test` installs
them); with DATALABS_REQUIRE_PG=1 (set by `make test`) a missing PostgreSQL is an error, not a skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from datalabs.accounts import auth, passwords, service
from datalabs.config import Settings
from datalabs.db.engine import make_engine, migrate, open_database, transaction
from tests.pg import PostgresServer, find_bin
from tests.runtimes import slurm_cluster as slurm_support

PASSWORD = "correct-horse-battery"
_counter = itertools.count()
# Under `make test` (--dist loadgroup --no-loadscope-reorder) a worker takes whole xdist groups, in the
# order of their first test. A test without a group of its own is grouped with its module: a module's
# fixtures (a `datalabs serve`, a seeded home) are then made once, not once on each worker its tests were
# spread over. The longest groups (slowest first, from `--durations=0` of a full run) go out first, so
# that neither worker is left running one alone at the end.
LONG_FIRST = (
    "cwl-conformance",  # 9 min: CWL v1.2's required tests with cwltool and Toil
    "slurm-platform",
    "mlops",
    "slurm",
    "ext4-quota-vm",
    "tests/api/test_authorization",
    "tests/web/test_first_day_browser",
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under --dist loadgroup: each test in a group (its module's unless it names one), LONG_FIRST's
    groups first (in that order); a plain run keeps file order."""
    if not config.getoption("loadgroup", default=False):
        return

    def groups(item) -> set[str]:
        return {str(m.args[0] if m.args else m.kwargs.get("name")) for m in item.iter_markers("xdist_group")}

    for item in items:
        if not groups(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0].removesuffix(".py")))

    def rank(item) -> int:
        return min((LONG_FIRST.index(n) for n in groups(item) & set(LONG_FIRST)), default=len(LONG_FIRST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    bindir = find_bin()
    if bindir is None:
        if os.environ.get("DATALABS_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL is required (DATALABS_REQUIRE_PG=1) but not installed")
        pytest.skip("PostgreSQL not installed")
    server = PostgresServer(bindir).start()
    server.execute("CREATE DATABASE dl_template")
    engine = make_engine(server.url("dl_template"))
    migrate(engine)
    engine.dispose()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[slurm_support.SlurmCluster]:
    """A real single-node Slurm cluster on loopback (tests/runtimes/slurm_cluster.py); mark its users
    `pytest.mark.xdist_group("slurm")` (runtime and engine tests) or `"slurm-platform"` (through
    `datalabs serve`) so each group's tests share one worker's cluster, and the two groups can run on
    both workers at once, each with its own cluster. Missing Slurm fails under `make test`."""
    reason = slurm_support.unavailable_reason()
    if reason:
        if os.environ.get("DATALABS_REQUIRE_SLURM") == "1":
            pytest.fail(f"Slurm is required (DATALABS_REQUIRE_SLURM=1): {reason}")
        pytest.skip(reason)
    with slurm_support.slurm_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh, migrated database per test, copied from a template (fast)."""
    with fresh_databases(request, request.param, tmp_path) as make:
        yield make()


@pytest.fixture
def more_databases(request, db_url, tmp_path) -> Iterator[Callable[[], str]]:
    """Makes more fresh databases on the engine of the test's `db_url`: for a test that needs several
    platforms one after another."""
    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    with fresh_databases(request, kind, tmp_path) as make:
        yield make


@contextmanager
def fresh_databases(request, kind: str, where: Path) -> Iterator[Callable[[], str]]:
    """Yields a maker of migrated databases (copies of the session's template); drops them at the end."""
    made: list[str] = []
    server: PostgresServer | None = request.getfixturevalue("pg_server") if kind == "postgresql" else None

    def make() -> str:
        if server is None:
            path = where / f"datalabs{len(made) or ''}.db"
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
            made.append(str(path))
            return f"sqlite:///{path}"
        name = f"t{os.getpid()}_{next(_counter)}"
        server.execute(f"CREATE DATABASE {name} TEMPLATE dl_template")
        made.append(name)
        return server.url(name)

    try:
        yield make
    finally:
        for name in made if server is not None else ():
            server.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    return Settings(home=tmp_path / "home", db={"url": db_url}, auth={"secret_key": "test-secret"})


@pytest.fixture
def sessions(settings):
    engine, factory = open_database(settings.database_url)
    yield factory
    engine.dispose()


@pytest.fixture
def db(sessions):
    with sessions() as session:
        yield session


@pytest.fixture
def app(settings):
    from datalabs.app import create_app  # imported late: pure service tests need no web stack

    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


class People:
    """Creates users and hands out clients logged in as them (cookie) or tokens."""

    def __init__(self, app, client: TestClient):
        self.app, self.client = app, client

    def user(self, name: str, role: str = "user", groups: tuple[str, ...] = ()) -> str:
        with transaction(self.app.state.sessions) as db:
            service.create_user(db, name, PASSWORD, role=role, email=f"{name}@example.org")
            existing = {g.name for g in service.list_groups(db)}
            for group in groups:
                if group not in existing:
                    service.create_group(db, group)
                service.set_member(db, group, name)
        return name

    def token(
        self, name: str, scopes: list[str] | None = None, expires_in: int | None = None
    ) -> dict[str, str]:
        with transaction(self.app.state.sessions) as db:
            user = service.get_user(db, name)
            _, secret = auth.create_token(db, self.app.state.settings, user, "test", scopes, expires_in)
        return {"Authorization": f"Bearer {secret}"}

    def login(self, name: str) -> TestClient:
        c = TestClient(self.app)
        # Share the running app's event loop (and lifespan) instead of a throwaway loop per request:
        # background work such as a lab start must outlive the request that began it.
        c.portal = self.client.portal
        r = c.post("/api/v1/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        # As the platform's own pages do: cookie-authenticated API changes carry the CSRF header.
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c


@pytest.fixture
def people(app, client) -> People:
    return People(app, client)


@pytest.fixture(autouse=True, scope="session")
def cheap_argon2():
    """Argon2 with minimal cost in tests (still real argon2): production cost is ~0.3 s per check here."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    passwords._dummy_hash.cache_clear()
    original = passwords._hasher
    passwords._hasher = lambda: cheap
    yield
    passwords._hasher = original
