"""`datalabs admin audit verify` and `export --csv` on a real database."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from datalabs.audit import chain
from datalabs.cli.main import app as cli
from datalabs.db.models import AuditRecord


@pytest.fixture
def records(settings, sessions, monkeypatch):
    monkeypatch.setenv("DATALABS_HOME", str(settings.home))
    monkeypatch.setenv("DATALABS_DB__URL", settings.database_url)
    monkeypatch.setenv("DATALABS_AUTH__SECRET_KEY", "test-secret")
    with sessions() as db:
        ids = [chain.append(db, who="ann", what=f"POST /x/{i}", outcome="200").id for i in range(3)]
        evil = '=HYPERLINK("http://evil")'
        chain.append(db, who=evil, what="POST /login", outcome="401", target="@SUM(A1)")
        db.commit()
    return ids


def test_verify_ok_then_tampered_names_the_record(records, sessions):
    ok = CliRunner().invoke(cli, ["admin", "audit", "verify"])
    assert ok.exit_code == 0 and "OK" in ok.output, ok.output
    with sessions() as db:
        db.execute(update(AuditRecord).where(AuditRecord.id == records[1]).values(outcome="403"))
        db.commit()
    bad = CliRunner().invoke(cli, ["admin", "audit", "verify"])
    assert bad.exit_code == 1
    assert f"record {records[1]}" in bad.output and "edited" in bad.output


def test_export_csv_escapes_formulas(records):
    out = CliRunner().invoke(cli, ["admin", "audit", "export", "--csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["what"] for r in rows[:3]] == ["POST /x/0", "POST /x/1", "POST /x/2"]
    assert rows[3]["who"] == '\'=HYPERLINK("http://evil")' and rows[3]["target"] == "'@SUM(A1)"
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
