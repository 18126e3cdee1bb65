"""`builder.find_links`: local wheel directories builds install from (builder/wheels.py), with a real
build (uv in bubblewrap, no network) that finds its only package in a directory outside its sources."""

from __future__ import annotations

from pathlib import Path

from datalabs.builder import wheels
from datalabs.catalogue import builds
from datalabs.catalogue.loader import load_directories
from tests.builder.support import write_wheel
from tests.catalogue.test_builds import TINY

PIP_CONFIG = """\
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.find-links='/srv/global-wheels'
:env:.find-links='/opt/wheels /srv/more file:///srv/file-url https://example.org/wheels'
"""


def test_pips_find_links_environment_first_local_directories_only():
    assert wheels.parse_config_list(PIP_CONFIG) == (
        Path("/opt/wheels"),
        Path("/srv/more"),
        Path("/srv/file-url"),
    )
    files_only = "\n".join(line for line in PIP_CONFIG.splitlines() if not line.startswith(":env:"))
    assert wheels.parse_config_list(files_only) == (Path("/srv/global-wheels"),)
    assert wheels.parse_config_list("install.find-links='/a'\nglobal.find-links='/b'") == (Path("/a"),)


def test_hostile_pip_config_lines_give_nothing():
    for text in (
        "",
        "garbage",
        "global.find-links",
        "find-links='/x'",
        "global.find-links='relative/dir'",
        "global.index-url='/opt/wheels'",
        "site.find-links='/x'",
        "=\n.=\n'''",
    ):
        assert wheels.parse_config_list(text) == (), text


def test_the_setting_wins_over_pip_and_keeps_existing_absolute_directories(settings, tmp_path):
    def with_links(links):
        return settings.model_copy(
            update={"builder": settings.builder.model_copy(update={"find_links": links})}
        )

    assert wheels.find_links(with_links([])) == ()
    there = tmp_path / "wheels"
    there.mkdir()
    picked = wheels.find_links(with_links([there, tmp_path / "absent", Path("relative")]))
    assert picked == (there.resolve(),)
    # Unset: pip's configured find-links, as far as they exist here.
    assert wheels.find_links(settings) == tuple(p.resolve() for p in wheels.pip_find_links() if p.is_dir())


def build_tiny(settings, root: Path, links: list[Path]) -> tuple[builds.Status, Path]:
    folder = root / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalab-meta.yml").write_text(TINY)
    (folder / "requirements.txt").write_text("--no-index\ndl-tinypkg==1.0\n")  # no wheel of its own
    settings = settings.model_copy(
        update={"builder": settings.builder.model_copy(update={"find_links": links, "network": "none"})}
    )
    [item] = load_directories([(root, "site")])[0]
    plan = builds.plan(settings, item.meta, item.folder)
    assert plan.request.find_links == tuple(p.resolve() for p in links)
    status = builds.build(settings, plan, builds.claim(settings, "tiny", item.meta.version), "test")
    return status, settings.home / "envs" / plan.key


def test_a_build_installs_from_the_configured_wheel_directory(settings, tmp_path):
    write_wheel(tmp_path / "site-wheels", value=7)
    status, env = build_tiny(settings, tmp_path / "defs", [tmp_path / "site-wheels"])
    assert status.state == "built", status.error
    [module] = env.glob("lib/python*/site-packages/dl_tinypkg/__init__.py")
    assert module.read_text() == "VALUE = 7\n"


def test_without_the_directory_the_same_build_fails(settings, tmp_path):
    write_wheel(tmp_path / "site-wheels")
    status, env = build_tiny(settings, tmp_path / "defs", [])
    assert status.state == "failed" and "dl-tinypkg" in status.error
    assert not env.exists()
