"""Quotas (`[quotas.<cluster>]`, usage/settings.py) checked at a lab's launch and restart.

`check_quota` runs inside labs.service's launch and restart transaction, after the running-labs limit
took its write lock (a no-op UPDATE of the owner's row: a row lock on PostgreSQL, the database's write
lock on SQLite), so two launches of one user never both count under a quota. A group's quota is shared
by users whose rows are not locked by each other's launches: the group's rows are locked the same way
first (PostgreSQL; SQLite's write lock covers it), always in name order, so launches never deadlock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Group, Lab, Membership
from datalabs.db.types import utcnow
from datalabs.errors import TooManyRequests
from datalabs.usage import records
from datalabs.usage.settings import Limits

RETRY_AFTER = 60  # seconds: a lab of the holder may end by then (the hours only next month)


@dataclass(frozen=True)
class Holder:
    """Whose quota: the user ("you"), or a group's members together ("group astro")."""

    who: str
    limits: Limits
    owner_ids: list[int]


@dataclass(frozen=True)
class InUse:
    labs: int
    cpu: float
    memory: int
    gpu: int


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def holders(db: Session, settings: Settings, principal: Principal, cluster: str) -> list[Holder]:
    """The quotas the principal is held to on `cluster`: their own, and each of their limited groups'."""
    quotas = settings.quotas.get(cluster)
    if quotas is None:
        return []
    found = [Holder("you", quotas.user, [principal.user.id])]
    for name in sorted(principal.groups & set(quotas.groups)):
        members = db.scalars(
            select(Membership.user_id).join(Group, Group.id == Membership.group_id).where(Group.name == name)
        )
        found.append(Holder(f"group {name}", quotas.groups[name], sorted({*members, principal.user.id})))
    return found


def check_quota(
    db: Session,
    settings: Settings,
    principal: Principal,
    cluster: str,
    *,
    cpu: float,
    memory: int,
    gpu: int,
    besides: str = "",
) -> None:
    """TooManyRequests naming the limit if a lab of `cpu`, `memory` bytes and `gpu` GPUs on `cluster` would
    take the principal or one of their groups past a quota (lab `besides`, being restarted, not counted).
    Call holding the owner's write lock (labs.service._check_limit), in the lab's transaction."""
    held = holders(db, settings, principal, cluster)
    if not held:
        return
    if groups := [holder.who.removeprefix("group ") for holder in held[1:]]:
        db.execute(
            update(Group)
            .where(Group.name.in_(groups))
            .values(id=Group.id)
            .execution_options(synchronize_session=False)
        )
    now = utcnow()
    for holder in held:
        _check_at_once(db, holder, cluster, besides, cpu=cpu, memory=memory, gpu=gpu)
        _check_hours(db, holder, cluster, now, gpu=gpu)


def in_use(db: Session, owner_ids: list[int], cluster: str, besides: str = "") -> InUse:
    """What the owners' active labs on the cluster hold now."""
    count, cpu, memory, gpu = db.execute(
        select(
            func.count(Lab.id),
            func.coalesce(func.sum(Lab.cpu), 0),
            func.coalesce(func.sum(Lab.memory), 0),
            func.coalesce(func.sum(Lab.gpu), 0),
        ).where(
            Lab.owner_id.in_(owner_ids),
            Lab.cluster == cluster,
            Lab.state.in_(records.ACTIVE),
            Lab.id != besides,
        )
    ).one()
    return InUse(int(count), float(cpu), int(memory), int(gpu))


def _check_at_once(
    db: Session, holder: Holder, cluster: str, besides: str, *, cpu: float, memory: int, gpu: int
) -> None:
    limits, used = holder.limits, in_use(db, holder.owner_ids, cluster, besides)
    uses = "use" if holder.who == "you" else "uses"
    where = f"on cluster {cluster}"
    if limits.labs is not None and used.labs + 1 > limits.labs:
        _refuse(
            f"{holder.who} {'have' if holder.who == 'you' else 'has'} {used.labs} of {limits.labs} "
            f"labs {where}; stop one to launch another"
        )
    checks = (
        ("CPUs", used.cpu, cpu, limits.cpu, _number),
        ("of memory", used.memory, memory, limits.memory, _bytes),
        ("GPUs", used.gpu, gpu, limits.gpu, _number),
    )
    for what, now_used, asked, limit, shown in checks:
        if limit is not None and asked > 0 and now_used + asked > limit:
            _refuse(
                f"{holder.who} {uses} {shown(now_used)} of {shown(limit)} {what} {where}; "
                f"this lab asks for {shown(asked)}"
            )


def _check_hours(db: Session, holder: Holder, cluster: str, now: datetime, *, gpu: int) -> None:
    limits = holder.limits
    if limits.cpu_hours is None and (limits.gpu_hours is None or gpu == 0):
        return
    start, end = month_start(now), next_month(month_start(now))
    spans = records.spans(db, start, end, owner_ids=holder.owner_ids, cluster=cluster)
    hours = [(span, span.seconds_between(start, end, now) / 3600) for span in spans]
    used = "used" if holder.who == "you" else "has used"
    if limits.cpu_hours is not None:
        cpu_hours = sum(span.cpu * h for span, h in hours)
        if cpu_hours >= limits.cpu_hours:
            _refuse(
                f"{holder.who} {used} {cpu_hours:.1f} of {_number(limits.cpu_hours)} CPU-hours on "
                f"{cluster} this month"
            )
    if limits.gpu_hours is not None and gpu > 0:
        gpu_hours = sum(span.gpu * h for span, h in hours)
        if gpu_hours >= limits.gpu_hours:
            _refuse(
                f"{holder.who} {used} {gpu_hours:.1f} of {_number(limits.gpu_hours)} GPU-hours on "
                f"{cluster} this month"
            )


def _refuse(message: str) -> None:
    raise TooManyRequests(message, retry_after=RETRY_AFTER, code="quota_exceeded")


def _number(value: float) -> str:
    return f"{value:g}"


def _bytes(value: float) -> str:
    return f"{value / 10**9:.1f} GB" if value >= 10**9 else f"{value / 10**6:.0f} MB"


@dataclass(frozen=True)
class Standing:
    """One limit and how much of it is used, for the usage page: "CPUs: 2 of 8 (you, on hpc)"."""

    cluster: str
    who: str
    what: str
    used: str
    limit: str
    full: bool


def standings(db: Session, settings: Settings, principal: Principal) -> list[Standing]:
    """Every quota the principal is held to, on the clusters they may use, with its current use."""
    now = utcnow()
    start, end = month_start(now), next_month(month_start(now))
    found = []
    for cluster in [c.name for c in settings.clusters if principal.in_any(c.allowed_groups)]:
        for holder in holders(db, settings, principal, cluster):
            limits, used = holder.limits, in_use(db, holder.owner_ids, cluster)
            spans = records.spans(db, start, end, owner_ids=holder.owner_ids, cluster=cluster)
            hours = [(span, span.seconds_between(start, end, now) / 3600) for span in spans]
            rows = (
                ("labs at once", used.labs, limits.labs, _number),
                ("CPUs in use", used.cpu, limits.cpu, _number),
                ("memory in use", used.memory, limits.memory, _bytes),
                ("GPUs in use", used.gpu, limits.gpu, _number),
                ("CPU-hours this month", sum(s.cpu * h for s, h in hours), limits.cpu_hours, _hours),
                ("GPU-hours this month", sum(s.gpu * h for s, h in hours), limits.gpu_hours, _hours),
            )
            for what, value, limit, shown in rows:
                if limit is not None:
                    found.append(
                        Standing(cluster, holder.who, what, shown(value), shown(limit), value >= limit)
                    )
    return found


def _hours(value: float) -> str:
    return f"{value:.1f}"
