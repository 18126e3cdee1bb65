"""Two members launching a team's lab at the same moment get the same lab (migration 0021's unique index
and labs.service.create's savepoint), never two labs nor an error. On SQLite and PostgreSQL (the db_url
fixture's parameters), where the racing inserts really run at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import get_user
from datalabs.config import Settings
from datalabs.db.models import Lab
from datalabs.labs import service
from tests.web.labs_support import lab_settings
from tests.web.test_team_lab_pages import TEAM_LAB, teams  # noqa: F401 (teamlab: a team-scoped fake)


@pytest.fixture
def settings(tmp_path: Path, catalogue_dir: Path, db_url: str) -> Settings:
    (catalogue_dir / "teamlab").mkdir(parents=True)
    (catalogue_dir / "teamlab" / "datalab-meta.yml").write_text(TEAM_LAB)
    base = lab_settings(tmp_path, catalogue_dir)
    return base.model_copy(update={"db": base.db.model_copy(update={"url": db_url})})


class _NoStart:
    def __init__(self) -> None:
        self.started: list[str] = []

    def spawn(self, lab_id: str, token: str, **_) -> None:
        self.started.append(lab_id)


def test_concurrent_launches_for_a_team_get_one_lab(teams):  # noqa: F811
    state, starter, outcomes = teams.app.state, _NoStart(), []
    gate = threading.Barrier(4)

    def launch() -> None:
        with state.sessions() as db:
            who = Principal(user=get_user(db, "bob"), groups=frozenset({"astro"}))
            gate.wait()
            try:
                lab = service.launch(
                    db,
                    state.settings,
                    state.catalogue,
                    starter,
                    who,
                    service.LaunchRequest("teamlab", team="astro"),
                )
                outcomes.append(lab.id)
            except Exception as exc:  # noqa: BLE001 (what a request would answer 500 for)
                db.rollback()
                outcomes.append(f"error: {exc!r}")

    threads = [threading.Thread(target=launch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 4 and len(set(outcomes)) == 1 and not outcomes[0].startswith("error"), outcomes
    assert len(starter.started) == 1
    with state.sessions() as db:
        assert db.query(Lab).filter(Lab.datalab == "teamlab").count() == 1


def test_restarting_a_team_lab_while_another_runs_is_a_clear_conflict(teams):  # noqa: F811
    """A member restarts the team's stopped lab while another of the same datalab runs: 409 that says so
    (the unique index refuses the second active one), and the stopped lab stays as it was."""
    from datalabs.errors import Conflict

    state, starter = teams.app.state, _NoStart()
    with state.sessions() as db:
        who = Principal(user=get_user(db, "bob"), groups=frozenset({"astro"}))
        req = service.LaunchRequest("teamlab", team="astro")
        first = service.launch(db, state.settings, state.catalogue, starter, who, req)
        service.set_state(db, first.id, "stopped")
        db.commit()
        second = service.launch(db, state.settings, state.catalogue, starter, who, req)
        assert second.id != first.id
        try:
            service.restart(db, state.settings, state.catalogue, starter, who, first.id)
        except Conflict as exc:
            assert exc.code == "team_lab_running" and "already has" in exc.message, exc
        else:
            raise AssertionError("a second active team lab was restarted")
        db.rollback()
        assert db.get(Lab, first.id).state == "stopped"
