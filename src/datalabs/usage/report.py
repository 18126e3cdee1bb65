"""Usage reports: one service function per page or API action (this month, by cluster, datalab, user,
group and day; the CSV export). Who may see what is decided here: a user their own usage, an
administrator anyone's."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Group, Membership, User
from datalabs.db.types import utcnow
from datalabs.errors import Forbidden, Invalid, NotFound
from datalabs.usage import chart, quota, records
from datalabs.usage.quota import month_start, next_month
from datalabs.usage.records import Span

BY = ("cluster", "datalab", "user", "group", "day")
NO_GROUP = "(no group)"
MAX_DAYS = 366
_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @property
    def label(self) -> str:
        if self.start == month_start(self.start) and self.end == next_month(self.start):
            return self.start.strftime("%B %Y")
        return f"{self.start:%Y-%m-%d} to {(self.end - timedelta(days=1)):%Y-%m-%d}"

    @property
    def month(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def days(self) -> list[date]:
        count = (self.end - self.start).days
        return [(self.start + timedelta(days=n)).date() for n in range(count)]


@dataclass
class Totals:
    sessions: int = 0
    hours: float = 0.0
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    memory_gb_hours: float = 0.0

    def add(self, span: Span, hours: float) -> None:
        self.sessions += 1
        self.hours += hours
        self.cpu_hours += span.cpu * hours
        self.gpu_hours += span.gpu * hours
        self.memory_gb_hours += span.memory / 10**9 * hours

    def as_dict(self) -> dict[str, float | int]:
        return {
            "sessions": self.sessions,
            "hours": round(self.hours, 4),
            "cpu_hours": round(self.cpu_hours, 4),
            "gpu_hours": round(self.gpu_hours, 4),
            "memory_gb_hours": round(self.memory_gb_hours, 4),
        }


@dataclass
class Report:
    period: Period
    spans: list[tuple[Span, float]]  # each with its hours within the period
    totals: Totals = field(default_factory=Totals)
    groups_of: dict[int, list[str]] = field(default_factory=dict)

    def by(self, key: str) -> list[tuple[str, Totals]]:
        """Totals per cluster, datalab, user, group (a user counts in each of their groups) or day, the
        largest CPU-hours first (days in order, every day of the period)."""
        if key == "day":
            return self._by_day()
        keys: Callable[[Span], list[str]] = {
            "cluster": lambda s: [s.cluster],
            "datalab": lambda s: [f"{s.name} ({'pipeline' if s.kind == 'run' else 'datalab'})"],
            "user": lambda s: [s.owner],
            "group": lambda s: self.groups_of.get(s.owner_id) or [NO_GROUP],
        }[key]
        rows: dict[str, Totals] = defaultdict(Totals)
        for span, hours in self.spans:
            for name in keys(span):
                rows[name].add(span, hours)
        return sorted(rows.items(), key=lambda item: (-item[1].cpu_hours, item[0]))

    def _by_day(self) -> list[tuple[str, Totals]]:
        days = {day.isoformat(): Totals() for day in self.period.days}
        now = utcnow()
        for span, _ in self.spans:
            for day in self.period.days:
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                hours = span.seconds_between(start, start + timedelta(days=1), now) / 3600
                if hours > 0:
                    days[day.isoformat()].add(span, hours)
        return list(days.items())


def month_period(month: str | None, now: datetime | None = None) -> Period:
    """The calendar month `YYYY-MM` (UTC); None or "": the current one. Invalid for anything else."""
    now = now or utcnow()
    if not month:
        start = month_start(now)
        return Period(start, next_month(start))
    match = _MONTH.fullmatch(month.strip())
    if not match or not 1 <= int(match[2]) <= 12 or not 2000 <= int(match[1]) <= 9999:
        raise Invalid(f"month {month[:20]!r} is not a month such as {now:%Y-%m}", code="bad_month")
    start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
    return Period(start, next_month(start))


def date_period(start: date | None, end: date | None, now: datetime | None = None) -> Period:
    """From `start` to `end`, both days included (UTC); missing: this month's first or last day."""
    month = month_period(None, now)
    first = datetime.combine(start, datetime.min.time(), UTC) if start else month.start
    last = datetime.combine(end, datetime.min.time(), UTC) + timedelta(days=1) if end else month.end
    if last <= first:
        raise Invalid("'to' must not be before 'from'", code="bad_period")
    if (last - first).days > MAX_DAYS:
        raise Invalid(f"a report covers at most {MAX_DAYS} days", code="bad_period")
    return Period(first, last)


def _build(db: Session, period: Period, owner_ids: list[int] | None) -> Report:
    now = utcnow()
    found = records.spans(db, period.start, period.end, owner_ids=owner_ids)
    report = Report(
        period, [(span, span.seconds_between(period.start, period.end, now) / 3600) for span in found]
    )
    for span, hours in report.spans:
        report.totals.add(span, hours)
    memberships = db.execute(
        select(Membership.user_id, Group.name).join(Group, Group.id == Membership.group_id)
    )
    for user_id, group in memberships:
        report.groups_of.setdefault(user_id, []).append(group)
    return report


def for_principal(
    db: Session,
    settings: Settings,
    principal: Principal,
    period: Period,
    *,
    user: str = "",
    group: str = "",
    everyone: bool = False,
) -> Report:
    """The principal's own usage; an administrator's may instead be one user's, a group's members' or
    everyone's. Others asking for someone else's are refused (Forbidden, naming nobody's existence)."""
    if ((user and user != principal.name) or group or everyone) and not principal.is_admin:
        raise Forbidden("only administrators see other users' usage", code="forbidden")
    records.refresh(db, settings)
    if everyone:
        return _build(db, period, None)
    if group:
        group_id = db.scalar(select(Group.id).where(Group.name == group))
        if group_id is None:
            raise NotFound(f"no group '{group}'", code="group_not_found")
        return _build(
            db, period, list(db.scalars(select(Membership.user_id).where(Membership.group_id == group_id)))
        )
    if user and user != principal.name:
        user_id = db.scalar(select(User.id).where(User.name == user))
        if user_id is None:
            raise NotFound(f"no user '{user}'", code="user_not_found")
        return _build(db, period, [user_id])
    return _build(db, period, [principal.user.id])


CSV_COLUMNS = (
    "user",
    "groups",
    "kind",
    "id",
    "name",
    "cluster",
    "start",
    "end",
    "state",
    "cpu",
    "memory_bytes",
    "gpu",
    "hours",
    "cpu_hours",
    "gpu_hours",
    "source",
    "slurm_job",
)


def csv_text(report: Report) -> str:
    """One line per lab session or run in the period; hours are those within it. Cells that a spreadsheet
    would run as a formula (=, +, -, @) are quoted with a leading apostrophe: names are user-chosen."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for span, hours in report.spans:
        writer.writerow(
            [
                _cell(span.owner),
                _cell(" ".join(report.groups_of.get(span.owner_id, []))),
                span.kind,
                span.ref,
                _cell(span.name),
                _cell(span.cluster),
                span.start.isoformat(),
                span.end.isoformat() if span.end else "",
                span.state,
                f"{span.cpu:g}",
                span.memory,
                span.gpu,
                f"{hours:.4f}",
                f"{span.cpu * hours:.4f}",
                f"{span.gpu * hours:.4f}",
                span.source,
                span.job_id,
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@dataclass(frozen=True)
class UsagePage:
    report: Report
    chart: chart.Chart
    quotas: list[quota.Standing]


def usage_page(db: Session, settings: Settings, principal: Principal, month: str | None) -> UsagePage:
    """The user's usage page: their month, its CPU-hours per day as a chart, their quotas now."""
    found = for_principal(db, settings, principal, month_period(month))
    per_day = [(day, totals.cpu_hours) for day, totals in found.by("day")]
    return UsagePage(found, chart.bars(per_day, "CPU-hours"), quota.standings(db, settings, principal))


def admin_page(db: Session, settings: Settings, principal: Principal, month: str | None) -> Report:
    """Everyone's usage of the month, for the administrators' page (by user, group and cluster)."""
    return for_principal(db, settings, principal, month_period(month), everyone=True)


def admin_csv(db: Session, settings: Settings, principal: Principal, month: str | None) -> tuple[str, str]:
    """Everyone's lab sessions and runs of the month as CSV, and a file name for it."""
    found = admin_page(db, settings, principal, month)
    return csv_text(found), f"usage-{found.period.month}.csv"


def nearby_months(period: Period) -> dict[str, str]:
    """The months before and after the period's (`YYYY-MM`), for the pages' links; no next past now."""
    before = month_start(period.start - timedelta(days=1))
    after = next_month(month_start(period.start))
    return {
        "previous": f"{before:%Y-%m}",
        "next": f"{after:%Y-%m}" if after <= utcnow() else "",
    }
