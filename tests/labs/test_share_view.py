"""A "view" share only for a lab that enforces it (issue 19's security gap): the proxy merely tells the lab
"view" and injects the lab's token, so only a desktop (the proxy drops a viewer's input) and a JupyterLab
loading the platform's authorizer keep a viewer from changing things. Any other lab is refused a view share,
nothing stored; collaborate is unaffected. The built-in definitions' own commands are checked here."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from datalabs.catalogue.loader import BUILTIN_DIR, load_directories
from datalabs.db.models import Lab, LabShare
from datalabs.errors import Conflict
from datalabs.labs import shares
from datalabs.labs.shares import AUTHORIZER_FLAG
from tests.labs.test_shares import _lab, _who
from tests.share_support import DESKTOP_RUNTIME, add_datalab

IDENTITY_FLAG = "--ServerApp.identity_provider_class=datalabs.labs.jupyter_identity.DatalabsIdentityProvider"


def builtin_runtimes() -> dict[tuple[str, str], dict]:
    """(name, version) -> runtime of every built-in definition, as the catalogue stores it."""
    loaded, problems = load_directories([(BUILTIN_DIR, "builtin")])
    assert problems == []
    return {(x.meta.name, x.meta.version): x.meta.model_dump(mode="json")["runtime"] for x in loaded}


BUILTIN = builtin_runtimes()


def runtime_of(name: str) -> dict:
    return next(runtime for (n, _), runtime in BUILTIN.items() if n == name)


@pytest.fixture
def world(people, app):
    """ada owns running labs of: the built-in mlflow's command, the built-in jupyterlab's, a desktop, a
    JupyterLab without the flag, and a datalab version gone from the catalogue; bob exists."""
    people.user("ada")
    people.user("bob")
    with app.state.sessions() as db:
        add_datalab(db, "mlflowish", "1", {**runtime_of("mlflow"), "scope": "user"})
        add_datalab(db, "jlab", "4.3.0", BUILTIN[("jupyterlab", "4.3.0")])
        add_datalab(db, "desk", "1", DESKTOP_RUNTIME)
        plain = [arg for arg in BUILTIN[("jupyterlab", "4.3.0")]["command"] if arg != AUTHORIZER_FLAG]
        add_datalab(db, "plainlab", "1", {"kind": "web", "command": plain})
        for lab_id, datalab in (("mlf1", "mlflowish"), ("jup1", "jlab"), ("desk1", "desk")):
            _lab(db, "ada", lab_id)
            db.get(Lab, lab_id).datalab = datalab
        db.get(Lab, "jup1").version = "4.3.0"
        _lab(db, "ada", "plain1")
        db.get(Lab, "plain1").datalab = "plainlab"
        _lab(db, "ada", "gone1")  # datalab "fake" version "1": no such row
        db.commit()
    return app.state.sessions


def stored(db, lab_id: str) -> dict[str, str]:
    return dict(db.execute(select(LabShare.grantee, LabShare.mode).where(LabShare.lab_id == lab_id)).all())


@pytest.mark.parametrize(
    ("lab_id", "datalab"), [("mlf1", "mlflowish"), ("plain1", "plainlab"), ("gone1", "fake")]
)
def test_view_is_refused_for_a_lab_that_cannot_enforce_it_and_nothing_is_stored(world, lab_id, datalab):
    with world() as db:
        ada = _who(db, "ada")
        with pytest.raises(Conflict) as refused:
            shares.share(db, ada, lab_id, "bob", "view")
        assert refused.value.code == "view_not_enforced"
        assert f"the datalab '{datalab}' cannot keep a viewer" in str(refused.value)
        assert "share it to collaborate instead" in str(refused.value)
        db.rollback()
        assert stored(db, lab_id) == {}
        shares.share(db, ada, lab_id, "bob", "collaborate")  # collaborate is unaffected
        assert stored(db, lab_id) == {"bob": "collaborate"}


def test_a_mode_change_to_view_is_refused_and_the_collaborate_share_stays(world):
    with world() as db:
        ada = _who(db, "ada")
        shares.share(db, ada, "mlf1", "bob", "collaborate")
        with pytest.raises(Conflict) as refused:
            shares.share(db, ada, "mlf1", "bob", "view")
        assert refused.value.code == "view_not_enforced"
        db.rollback()
        assert stored(db, "mlf1") == {"bob": "collaborate"}
        assert shares.mode_for(db, "mlf1", "bob", frozenset()) == "collaborate"


@pytest.mark.parametrize("lab_id", ["jup1", "desk1"])
def test_view_is_given_for_the_builtin_jupyterlab_and_a_desktop(world, lab_id):
    with world() as db:
        ada = _who(db, "ada")
        shares.share(db, ada, lab_id, "bob", "collaborate")
        shares.share(db, ada, lab_id, "bob", "view")  # a mode change too
        assert stored(db, lab_id) == {"bob": "view"}


ENFORCING = {"jupyterlab", "jupyterlab-astro", "jupyterlab-gnss", "jupyterlab-gpu", "jupyterlab-ml"}
NOT_ENFORCING = {"mlflow", "mlflow-model"}


@pytest.mark.parametrize(("name", "version"), sorted(BUILTIN))
def test_the_builtin_definitions(name, version):
    runtime = BUILTIN[(name, version)]
    meta = {"runtime": runtime}
    if runtime["kind"] == "desktop" or name in ENFORCING:
        assert shares.enforces_view(meta), name
    elif name in NOT_ENFORCING:
        assert not shares.enforces_view(meta), name
    else:
        raise AssertionError(f"a new built-in web datalab {name}: say here whether it enforces view")


@pytest.mark.parametrize(
    "meta",
    [
        None,  # the version is gone from the catalogue
        {},
        {"runtime": None},
        {"runtime": "web"},
        {"runtime": {"kind": "web"}},
        {"runtime": {"kind": "web", "command": "jupyter-lab " + AUTHORIZER_FLAG}},  # not a list
        {"runtime": {"kind": "web", "command": ["jupyter-lab"]}},
        {"runtime": {"kind": "web", "command": ["jupyter-lab", IDENTITY_FLAG]}},
        # overridden by a later setting (traitlets keeps the last one)
        {
            "runtime": {
                "kind": "web",
                "command": ["jupyter-lab", AUTHORIZER_FLAG, "--ServerApp.authorizer_class=x.Y"],
            }
        },
        {
            "runtime": {
                "kind": "web",
                "command": ["jupyter-lab", AUTHORIZER_FLAG, "--ServerApp.authorizer_class", "x"],
            }
        },
        # inside a shell string (an echo, a comment): not its own argument
        {"runtime": {"kind": "web", "command": ["sh", "-c", f"echo {AUTHORIZER_FLAG}; exec myapp"]}},
        {"runtime": {"kind": "web", "command": ["jupyter-lab", AUTHORIZER_FLAG + "Not"]}},
        {"runtime": {"kind": "web", "command": ["jupyter-lab", " " + AUTHORIZER_FLAG]}},
        {"runtime": {"kind": "weird", "command": ["jupyter-lab", AUTHORIZER_FLAG]}},
        {"runtime": {"kind": ["desktop"]}},
    ],
)
def test_what_does_not_enforce_view(meta):
    assert not shares.enforces_view(meta)


def test_what_enforces_view():
    assert shares.enforces_view({"runtime": {"kind": "web", "command": ["jupyter-lab", AUTHORIZER_FLAG]}})
    assert shares.enforces_view({"runtime": {"kind": "desktop", "desktop": {"command": ["topcat"]}}})
