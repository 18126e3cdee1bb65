"""Retention: old records pruned by the manager's duty, the chain still verifies (CLI included)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from datalabs.audit import chain, retention
from datalabs.cli.main import app as cli
from datalabs.db.models import AuditRecord
from datalabs.db.types import utcnow


def _record(sessions, who: str, age_days: float, monkeypatch) -> None:
    monkeypatch.setattr(chain, "utcnow", lambda: utcnow() - timedelta(days=age_days))
    with sessions() as db:
        chain.append(db, who=who, what="POST /x", outcome="200")
        db.commit()
    monkeypatch.undo()


def test_the_duty_prunes_old_records_and_the_chain_verifies(settings, sessions, monkeypatch):
    for who, age in (("old1", 500), ("old2", 401), ("new1", 399), ("new2", 0)):
        _record(sessions, who, age, monkeypatch)
    assert settings.audit.retention_days == 400

    async def one_round():
        task = asyncio.create_task(retention.run(settings, sessions, every=3600))
        for _ in range(200):
            await asyncio.sleep(0.02)
            with sessions() as db:
                if db.execute(select(AuditRecord.who)).scalars().all() == ["new1", "new2"]:
                    break
        task.cancel()

    asyncio.run(one_round())
    with sessions() as db:
        assert db.execute(select(AuditRecord.who).order_by(AuditRecord.id)).scalars().all() == [
            "new1",
            "new2",
        ]
        assert chain.verify(db) is None
    monkeypatch.setenv("DATALABS_HOME", str(settings.home))
    monkeypatch.setenv("DATALABS_DB__URL", settings.database_url)
    monkeypatch.setenv("DATALABS_AUTH__SECRET_KEY", "test-secret")
    out = CliRunner().invoke(cli, ["admin", "audit", "verify"])
    assert out.exit_code == 0 and "OK" in out.output, out.output
    assert retention.prune_once(sessions, 400) == 0  # nothing more to prune


def test_the_manager_runs_the_retention_duty(app, monkeypatch):
    started = []

    async def fake_run(settings, sessions, every=retention.PRUNE_EVERY):
        started.append(settings.audit.retention_days)

    monkeypatch.setattr(retention, "run", fake_run)
    from fastapi.testclient import TestClient

    with TestClient(app):
        pass
    assert started == [400]
