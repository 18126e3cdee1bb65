"""One active team lab per team and datalab, one serving lab per team and model version (migration 0021):
the database refuses a second, on SQLite and PostgreSQL; ended labs and other teams do not count."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy.exc import IntegrityError

from datalabs.db.models import Lab, User


def _lab(owner: int, team: str | None, datalab: str = "mlflow", model: str | None = None, state="running"):
    return Lab(
        id=secrets.token_hex(8),
        owner_id=owner,
        datalab=datalab,
        version="1",
        team=team,
        model=model,
        state=state,
    )


def _user(db, name: str) -> int:
    user = User(name=name)
    db.add(user)
    db.flush()
    return user.id


def test_a_second_active_tracking_server_of_a_team_is_refused(db):
    ada, bob = _user(db, "ada"), _user(db, "bob")
    db.add(_lab(ada, "astro", state="stopped"))  # ended: does not count
    db.add(_lab(ada, "astro"))
    db.add(_lab(bob, "helio"))  # another team
    db.add(_lab(bob, None))  # ordinary labs: any number
    db.add(_lab(bob, None))
    db.commit()
    for state in ("pending", "starting", "running"):
        db.add(_lab(bob, "astro", state=state))
        with pytest.raises(IntegrityError):
            db.flush()
        db.rollback()


def test_serving_labs_one_per_team_and_model_version(db):
    ada = _user(db, "ada")
    db.add(_lab(ada, "astro"))  # the tracking server
    db.add(_lab(ada, "astro", "mlflow-model", "models:/line/1"))
    db.add(_lab(ada, "astro", "mlflow-model", "models:/line/2"))
    db.add(_lab(ada, "helio", "mlflow-model", "models:/line/1"))
    db.commit()
    db.add(_lab(ada, "astro", "mlflow-model", "models:/line/2", state="pending"))
    with pytest.raises(IntegrityError):
        db.flush()
