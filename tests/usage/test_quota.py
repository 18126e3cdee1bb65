"""Quotas per cluster (`[quotas.<cluster>]`) at launch and restart: CPUs, memory, GPUs and labs at once,
CPU- and GPU-hours per month, for each user and for a group's members together; held under 20 concurrent
launches (SQLite and PostgreSQL), refused with a 429 that names the limit."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import get_user
from datalabs.config import Settings
from datalabs.db.models import Lab, UsageRecord
from datalabs.db.types import utcnow
from datalabs.errors import TooManyRequests
from datalabs.labs import service
from tests.catalogue.test_loader import write
from tests.runtimes.test_gpus import make_node

GPU_LAB = """\
title: GPU Lab
version: "1.0"
runtime:
  kind: web
  command: [fake-lab]
  resources:
    default: {cpu: 1, memory: 1G, gpu: 0}
    maximum: {cpu: 4, memory: 8G, gpu: 2}
"""
QUOTAS = {
    "local": {
        "user": {"cpu": 3, "memory": "3G", "gpu": 2, "cpu_hours": 100, "gpu_hours": 10},
        "groups": {"astro": {"cpu": 4, "labs": 5}},
    }
}


@pytest.fixture
def four_gpus(tmp_path):
    """This server's GPUs for the launch's host check (labs.service): four fake nvidiaN nodes, more than
    the quota allows, so that the quota is what refuses."""
    root = tmp_path / "gpu-dev"
    root.mkdir()
    for index in range(4):
        make_node(root / f"nvidia{index}", 195, index)
    return root


@pytest.fixture
def settings(tmp_path, db_url, four_gpus):
    root = tmp_path / "defs"
    write(root, "gpulab", GPU_LAB)
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [root], "builtin": False},
        labs={
            "backend": "datalabs.runtimes.testing:FakeRuntime",
            "max_running_per_user": 50,
            "gpu_device_root": str(four_gpus),
        },
        quotas=QUOTAS,
    )


class _NoStart:
    """Records what would be started: these launches test the quota, not the runtime."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def spawn(self, lab_id: str, token: str, **_) -> None:
        self.started.append(lab_id)


def _principal(db, name: str) -> Principal:
    user = get_user(db, name)
    return Principal(user=user, groups=frozenset(m.group.name for m in user.memberships))


def _launch(app, name: str, **resources):
    state = app.state
    with state.sessions() as db:
        lab = service.launch(
            db,
            state.settings,
            state.catalogue,
            _NoStart(),
            _principal(db, name),
            service.LaunchRequest("gpulab", **resources),
        )
        return lab.id


def _refusal(app, name: str, **resources) -> str:
    with pytest.raises(TooManyRequests) as refused:
        _launch(app, name, **resources)
    assert refused.value.code == "quota_exceeded" and refused.value.retry_after > 0
    return refused.value.message


def _race(app, names: list[str], **resources) -> tuple[list[str], _NoStart]:
    """20 launches at once, each in its own thread and session (as 20 requests are), by `names` in turn."""
    state, starter, outcomes = app.state, _NoStart(), []
    gate = threading.Barrier(20)

    def launch(name: str) -> None:
        with state.sessions() as db:
            who = _principal(db, name)
            gate.wait()
            try:
                service.launch(
                    db,
                    state.settings,
                    state.catalogue,
                    starter,
                    who,
                    service.LaunchRequest("gpulab", **resources),
                )
                outcomes.append("launched")
            except TooManyRequests as exc:
                db.rollback()
                outcomes.append("refused" if exc.code == "quota_exceeded" else f"other: {exc.code}")
            except Exception as exc:  # noqa: BLE001 (what a request would answer 500 for)
                db.rollback()
                outcomes.append(f"error: {exc!r}")

    threads = [threading.Thread(target=launch, args=(names[i % len(names)],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes, starter


def _active(app, **where) -> list[Lab]:
    with app.state.sessions() as db:
        query = db.query(Lab).filter(Lab.state.in_(service.ACTIVE))
        return query.filter_by(**where).all() if where else query.all()


def test_twenty_concurrent_launches_never_exceed_the_cpu_quota(people, app):
    people.user("ada")
    outcomes, starter = _race(app, ["ada"], cpu=1, memory="500M")  # 3 CPUs: three labs of one
    assert sorted(set(outcomes)) == ["launched", "refused"] and outcomes.count("launched") == 3, outcomes
    labs = _active(app)
    assert len(labs) == 3 and sum(lab.cpu for lab in labs) == 3
    assert sorted(starter.started) == sorted(lab.id for lab in labs)  # only committed labs started


def test_twenty_concurrent_launches_never_exceed_the_gpu_quota(people, app):
    people.user("ada")
    outcomes, _ = _race(app, ["ada"], cpu=0.1, memory="100M", gpu=1)  # 2 GPUs: two labs of one
    assert outcomes.count("launched") == 2 and outcomes.count("refused") == 18, outcomes
    assert sum(lab.gpu for lab in _active(app)) == 2


def test_concurrent_launches_of_two_members_never_exceed_their_groups_quota(people, app):
    people.user("ada", groups=("astro",))
    people.user("mia", groups=("astro",))
    # Each may use 3 CPUs; astro's members together 4: of 20 launches of 1 CPU, exactly 4 pass.
    outcomes, _ = _race(app, ["ada", "mia"], cpu=1, memory="100M")
    assert outcomes.count("launched") == 4 and outcomes.count("refused") == 16, outcomes
    labs = _active(app)
    assert len(labs) == 4
    by_owner = {}
    for lab in labs:
        by_owner[lab.owner_id] = by_owner.get(lab.owner_id, 0) + 1
    assert max(by_owner.values()) <= 3


def test_refusals_name_the_limit_the_use_and_the_ask(people, app):
    people.user("ada")
    people.user("val", groups=("astro",))
    _launch(app, "ada", cpu=2, memory="1G")
    assert _refusal(app, "ada", cpu=2, memory="1G") == (
        "you use 2 of 3 CPUs on cluster local; this lab asks for 2"
    )
    assert _refusal(app, "ada", cpu=1, memory="2500M") == (
        "you use 1.0 GB of 3.0 GB of memory on cluster local; this lab asks for 2.5 GB"
    )
    # A group's members together: val alone in astro, limited to 4 CPUs and 5 labs.
    _launch(app, "val", cpu=3, memory="100M")
    message = _refusal(app, "val", cpu=1, memory="100M")
    assert message == "you use 3 of 3 CPUs on cluster local; this lab asks for 1"


def test_gpu_refusal_and_group_wording(people, app):
    people.user("ada", groups=("astro",))
    people.user("mia", groups=("astro",))
    _launch(app, "ada", cpu=0.5, memory="100M", gpu=2)
    assert _refusal(app, "ada", cpu=0.5, memory="100M", gpu=1) == (
        "you use 2 of 2 GPUs on cluster local; this lab asks for 1"
    )
    _launch(app, "mia", cpu=3, memory="100M")
    assert _refusal(app, "ada", cpu=1, memory="100M") == (
        "group astro uses 3.5 of 4 CPUs on cluster local; this lab asks for 1"
    )


def _used(app, name: str, cpu_hours: float, gpu_hours: float) -> None:
    """A session of 36 s that ended a second ago, as wide as the hours asked (this month's, unless it is
    the month's first 37 seconds)."""
    end = utcnow() - timedelta(seconds=1)
    start = end - timedelta(seconds=36)
    with app.state.sessions() as db:
        db.add(
            UsageRecord(
                lab_id="old",
                owner_id=get_user(db, name).id,
                datalab="gpulab",
                cluster="local",
                backend="local",
                cpu=cpu_hours * 100,
                memory=10**9,
                gpu=round(gpu_hours * 100),
                opened_at=start,
                started_at=start,
                ended_at=end,
                state="stopped",
                job_id="",
                accounted=True,
            )
        )
        db.commit()


def test_gpu_hours_of_the_month_refuse_gpu_labs_only(people, app):
    people.user("ada")
    _used(app, "ada", cpu_hours=5, gpu_hours=10)  # the user's monthly GPU quota
    assert _refusal(app, "ada", cpu=1, memory="100M", gpu=1) == (
        "you used 10.0 of 10 GPU-hours on local this month"
    )
    assert _launch(app, "ada", cpu=1, memory="100M")  # CPU labs go on: 5 of 100 CPU-hours


def test_cpu_hours_of_the_month_count_running_labs_too(people, app):
    people.user("ada")
    _used(app, "ada", cpu_hours=100, gpu_hours=0)  # the user's monthly CPU quota
    assert _refusal(app, "ada", cpu=1, memory="100M") == "you used 100.0 of 100 CPU-hours on local this month"


def test_a_restart_counts_the_lab_once_and_is_refused_over_the_quota(people, app):
    people.user("ada")
    state = app.state
    lab_id = _launch(app, "ada", cpu=2, memory="1G")
    with state.sessions() as db:
        service.set_state(db, lab_id, "running")
        service.set_state(db, lab_id, "stopped")
    with state.sessions() as db:  # at 2 of 3 CPUs with the lab itself: restarting it is fine
        lab, _ = service.reopen(db, state.settings, state.catalogue, _principal(db, "ada"), lab_id)
        db.commit()
        service.set_state(db, lab_id, "stopped")
    _launch(app, "ada", cpu=2, memory="1G")
    with state.sessions() as db, pytest.raises(TooManyRequests) as refused:
        service.reopen(db, state.settings, state.catalogue, _principal(db, "ada"), lab_id)
    assert refused.value.message == "you use 2 of 3 CPUs on cluster local; this lab asks for 2"
    with state.sessions() as db:
        assert db.get(Lab, lab_id).state == "stopped"  # the refusal left it as it was


def test_the_api_answers_429_with_the_message(people, app):
    people.user("ada")
    c = people.login("ada")
    assert c.post("/api/v1/labs", json={"datalab": "gpulab", "resources": {"cpu": 3}}).status_code == 202
    r = c.post("/api/v1/labs", json={"datalab": "gpulab", "resources": {"cpu": 1}})
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert r.json()["error"] == {
        "code": "quota_exceeded",
        "message": "you use 3 of 3 CPUs on cluster local; this lab asks for 1",
    }
