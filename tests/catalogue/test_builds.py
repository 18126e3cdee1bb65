"""Environments of catalogue datalabs built by the platform (catalogue/builds.py, build_service.py), with
real parts: uv in bubblewrap installing a wheel from the datalab's folder (no network), the real DB."""

from __future__ import annotations

from pathlib import Path

import pytest

from datalabs.accounts.principal import Principal
from datalabs.builder import gc
from datalabs.catalogue import build_service, builds, search, service
from datalabs.catalogue.loader import BUILTIN_DIR, load_directories
from datalabs.config import Settings
from datalabs.errors import Conflict
from datalabs.labs.spec import _built_environment
from datalabs.runtimes.base import StartError
from tests.builder.support import write_wheel

TINY = """\
title: Tiny Lab
abstract: A lab with one small package of its own.
version: "1.0"
runtime:
  kind: web
  command: jupyter-lab --ServerApp.sock={socket}
  python_packages: [dl_tinypkg]
  environment: requirements.txt
  requirements: ["jupyterlab>=4.3,<4.4", "numpy>=1"]
"""


def tiny_datalab(root: Path, requirement: str = "dl-tinypkg==1.0", name: str = "tiny") -> Path:
    """A site datalab whose requirements.txt installs a wheel from its own folder."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalab-meta.yml").write_text(TINY)
    (folder / "requirements.txt").write_text(f"--no-index\n--find-links wheels\n{requirement}\n")
    write_wheel(folder / "wheels")
    return folder


@pytest.fixture
def site(tmp_path, settings) -> Settings:
    root = tmp_path / "site"
    tiny_datalab(root)
    return settings.model_copy(
        update={"catalogue": settings.catalogue.model_copy(update={"dirs": [str(root)]})}
    )


def entry(db, name):
    return next(e for e in search.Catalogue().entries(db) if e.name == name)


def test_what_the_platform_provides_is_not_installed():
    assert "platform's JupyterLab" in builds.provided_by_platform("jupyterlab>=4.3,<4.4")
    assert "already in the platform's environment" in builds.provided_by_platform("numpy>=1")
    assert builds.provided_by_platform("numpy>=999") == ""  # asks for more than the platform has
    assert builds.provided_by_platform("no-such-package-anywhere") == ""
    assert builds.provided_by_platform("numpy[extra]>=1") == ""  # extras may pull in more
    assert "not needed" in builds.provided_by_platform("anything; python_version < '3'")
    assert builds.provided_by_platform("--index-url https://example.org/simple") == ""


def test_builtin_plans(settings):
    loaded = {item.meta.name: item for item in load_directories([(BUILTIN_DIR, "builtin")])[0]}
    assert builds.plan(settings, loaded["jupyterlab"].meta, loaded["jupyterlab"].folder) is None
    assert builds.plan(settings, loaded["topcat"].meta, loaded["topcat"].folder) is None
    gnss = builds.plan(settings, loaded["jupyterlab-gnss"].meta, loaded["jupyterlab-gnss"].folder)
    names = {r.split(">")[0] for r in gnss.request.requirements}
    assert {"georinex", "xarray", "matplotlib"} <= names
    assert not names & {"jupyterlab", "numpy", "hatanaka"}  # the platform has these
    assert gnss.request.tenant == "platform" and gnss.request.requirements_file is None


def test_availability_before_and_after_build_and_reuse(db, sessions, site):
    service.reload(db, site)
    db.commit()
    before = entry(db, "tiny")
    assert not before.available
    assert "not built yet" in before.unavailable_reason
    with pytest.raises(StartError, match="not built yet"):
        _built_environment(site, before.raw)

    lines: list[str] = []
    [status] = build_service.build_all(site, sessions, ("tiny",), say=lines.append)
    assert status.state == "built" and not status.cached, lines
    assert any("Not installed, jupyterlab" in line for line in lines)
    assert not any("numpy" in line for line in lines if line.startswith("[tiny] $ uv pip install"))
    db.expire_all()
    after = entry(db, "tiny")
    assert after.available, after.unavailable_reason
    env = Path(after.raw["_build"]["env"])
    assert (env / "lib").is_dir() and env.parent == site.home / "envs"
    lab_env = _built_environment(site, after.raw)
    assert lab_env.env["JUPYTER_PATH"] == str(env / "share" / "jupyter")

    lines.clear()
    [again] = build_service.build_all(site, sessions, ("tiny",), say=lines.append)
    assert again.state == "built" and again.cached and again.env == str(env)
    assert any("reusing environment" in line for line in lines)
    # Garbage collection keeps it although no app version names it.
    assert gc.collect(db, site, grace=0) == [] and env.is_dir()


def test_a_failed_build_says_why(db, sessions, site, tmp_path):
    root = Path(site.catalogue.dirs[0])
    tiny_datalab(root, requirement="dl-tinypkg==9.9", name="broken")
    (root / "broken" / "datalab-meta.yml").write_text(TINY.replace("Tiny Lab", "Broken Lab"))
    statuses = build_service.build_all(site, sessions, say=lambda _: None)
    by_name = {s.name: s for s in statuses}
    assert by_name["tiny"].state == "built"  # one failure does not stop the others
    failed = by_name["broken"]
    assert failed.state == "failed" and "dl-tinypkg==9.9" in failed.error
    db.expire_all()
    broken = entry(db, "broken")
    assert not broken.available
    assert broken.unavailable_reason == f"its Python environment could not be built: {failed.error}"
    log = builds.read_log(site, "broken", "1.0")
    assert log[-1].startswith("BUILD FAILED: ") and "dl-tinypkg==9.9" in log[-1]
    assert str(root) not in failed.error  # users read the reason: no server paths in it


def test_a_definition_file_cannot_name_an_environment(db, site):
    """Only the platform says what was built: a `_build` in a definition file is dropped."""
    folder = Path(site.catalogue.dirs[0]) / "tiny"
    (folder / "datalab-meta.yml").write_text(TINY + "_build: {builder: uv, env: /etc, key: ''}\n")
    plain = Path(site.catalogue.dirs[0]) / "plain"
    plain.mkdir()
    (plain / "datalab-meta.yml").write_text(
        TINY.replace("requirements.txt", "platform") + "_build: {env: /etc}\n"
    )
    service.reload(db, site)
    db.commit()
    assert entry(db, "tiny").raw["_build"]["env"] == "" and not entry(db, "tiny").available
    assert "_build" not in entry(db, "plain").raw


def test_a_second_build_of_one_datalab_waits_its_turn(db, sessions, site):
    service.reload(db, site)
    admin = Principal(_admin(db), frozenset())
    lock = builds.claim(site, "tiny", "1.0")
    try:
        with pytest.raises(Conflict, match="already being built"):
            build_service.start(db, site, sessions, admin, "tiny")
        with pytest.raises(Conflict, match="nothing to build"):
            build_service.start(db, site, sessions, admin, "jupyterlab")
        # A status left "building" by a process that ended reads as interrupted once nobody holds the lock.
        builds.write_status(site, builds.Status("tiny", "1.0", "building", key="k"))
        assert builds.read_status(site, "tiny", "1.0").state == "building"
    finally:
        lock.close()
    assert builds.read_status(site, "tiny", "1.0").state == "interrupted"


def test_changed_requirements_need_a_new_build(db, sessions, site):
    build_service.build_all(site, sessions, ("tiny",), say=lambda _: None)
    folder = Path(site.catalogue.dirs[0]) / "tiny"
    write_wheel(folder / "wheels", version="2.0", value=43)
    (folder / "requirements.txt").write_text("--no-index\n--find-links wheels\ndl-tinypkg==2.0\n")
    service.reload(db, site)
    db.commit()
    assert "not built yet" in entry(db, "tiny").unavailable_reason  # the old build was for 1.0


def test_build_folders_never_leave_the_builds_root(settings):
    root = settings.home / "catalogue" / "builds"
    for version in ("..", "../../etc", "a/b", "."):
        assert builds.build_dir(settings, "tiny", version).parent.parent == root


def _admin(db):
    from datalabs.accounts import service as accounts

    return accounts.create_user(db, "root-admin", "long-enough-pw", role="admin")


def test_without_network_the_build_fails_with_uvs_reason(db, sessions, site):
    """No route to the package index (builds.network = none stands in for a machine offline)."""
    offline = site.model_copy(update={"builder": site.builder.model_copy(update={"network": "none"})})
    folder = Path(site.catalogue.dirs[0]) / "tiny"
    (folder / "requirements.txt").unlink()  # the package now comes from the index
    (folder / "datalab-meta.yml").write_text(TINY.replace('"numpy>=1"', '"dl-no-such-package-here"'))
    [status] = build_service.build_all(offline, sessions, ("tiny",), say=lambda _: None)
    assert status.state == "failed" and status.error
    db.expire_all()
    reason = entry(db, "tiny").unavailable_reason
    assert reason == f"its Python environment could not be built: {status.error}"
