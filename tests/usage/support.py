"""Usage records for report, API and page tests: sessions of known length in a fixed past month (MONTH),
so that no test depends on today's date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datalabs.accounts.service import get_user
from datalabs.db.models import UsageRecord

MONTH = "2025-03"
PERIOD = {"from": "2025-03-01", "to": "2025-03-31"}


def add_session(
    app, user: str, *, datalab="fake", cluster="local", cpu=1.0, gpu=0, minutes=60, lab_id=""
) -> None:
    """A lab session of `minutes` from the start of MONTH."""
    start = datetime(2025, 3, 1, tzinfo=UTC)
    end = start + timedelta(minutes=minutes)
    with app.state.sessions() as db:
        db.add(
            UsageRecord(
                lab_id=lab_id or f"{user}-{datalab}-{minutes}",
                owner_id=get_user(db, user).id,
                datalab=datalab,
                cluster=cluster,
                backend="local",
                cpu=cpu,
                memory=10**9,
                gpu=gpu,
                opened_at=start,
                started_at=start,
                ended_at=end,
                state="stopped",
                job_id="",
                accounted=True,
            )
        )
        db.commit()
