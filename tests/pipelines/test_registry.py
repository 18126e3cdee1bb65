"""pipelines/registry.py: two requests registering one name at once get one pipeline and a clear 409,
never a 500 (twin `datalabs cwl-runner` commands register the same content-named pipeline)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from datalabs.accounts import service as accounts
from datalabs.db.engine import transaction
from datalabs.db.models import Pipeline
from tests.pipelines.conftest import HELLO


def test_a_name_registered_meanwhile_by_another_request_is_a_conflict(people, app, monkeypatch):
    people.user("ada")
    ada = people.login("ada")
    real_scalar, raced = Session.scalar, []

    def racing(self, statement, *args, **kwargs):
        found = real_scalar(self, statement, *args, **kwargs)
        if found is None and not raced and "pipelines.name" in str(statement):
            raced.append(True)  # right after this request's check, another one registers the name
            with transaction(app.state.sessions) as db:
                owner = accounts.get_user(db, "ada")
                db.add(Pipeline(name="hello", title="twin", owner_id=owner.id))
        return found

    monkeypatch.setattr(Session, "scalar", racing)
    r = ada.post("/api/v1/pipelines", json={"name": "hello", "cwl": HELLO})
    assert raced and r.status_code == 409 and "already exists" in r.text, r.text
    with transaction(app.state.sessions) as db:
        assert [p.title for p in db.query(Pipeline).filter_by(name="hello")] == ["twin"]
