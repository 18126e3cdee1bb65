"""The `Builder` contract (builder/base.py), run against every builder: environments are keyed by the
normalised recipe, a rebuild of an unchanged recipe reuses the environment, a failure raises BuildError
with the failing line and leaves no environment, and `lab_environment` points into the environment."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from datalabs.builder.base import Builder, BuildError, BuildRequest, get_builder
from tests.builder.support import make_sources

BUILDERS = ["uv"]
pytestmark = pytest.mark.slow


@pytest.fixture(params=BUILDERS)
def builder(request, tmp_path) -> Builder:
    return get_builder(request.param, tmp_path / "envs")


def request_for(src, requirements=None) -> BuildRequest:
    reqs = requirements or ["--no-index", "--find-links wheels", "dl-tinypkg==1.0"]
    return BuildRequest(src, reqs, src / "requirements.txt", label="contract")


def test_key_is_stable_and_sensitive(builder, tmp_path):
    src = make_sources(tmp_path / "src")
    a = builder.key(request_for(src))
    assert a == builder.key(request_for(src)) and len(a) >= 16
    assert a != builder.key(request_for(src, ["--no-index", "--find-links wheels", "dl-tinypkg==2.0"]))
    wheels = (tmp_path / "site-wheels",)
    with_wheels = replace(request_for(src), find_links=wheels)
    assert builder.key(with_wheels) == builder.key(replace(request_for(src), find_links=wheels))
    assert builder.key(with_wheels) not in (a, builder.key(replace(with_wheels, find_links=(tmp_path,))))


def test_build_then_reuse(builder, tmp_path):
    src = make_sources(tmp_path / "src")
    lines: list[str] = []
    first = builder.build(request_for(src), lines.append)
    assert not first.cached and builder.exists(first.key) and lines
    out = subprocess.run(
        [str(first.env / "bin" / "python"), "-c", "import dl_tinypkg; print(dl_tinypkg.VALUE)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "42", out.stderr
    again = builder.build(request_for(src), lines.append)
    assert again.cached and again.env == first.env and again.seconds < first.seconds
    lab = builder.lab_environment(first.env)
    assert any(m.source == first.env and m.readonly for m in lab.mounts)


def test_failure_names_the_line_and_leaves_nothing(builder, tmp_path):
    src = make_sources(tmp_path / "src", requirement="no-such-package-anywhere==9.9")
    req = request_for(src, ["--no-index", "--find-links wheels", "no-such-package-anywhere==9.9"])
    with pytest.raises(BuildError) as err:
        builder.build(req, lambda line: None)
    assert "no-such-package-anywhere" in err.value.line
    assert not builder.exists(builder.key(req))
    assert not (builder.envs_dir / builder.key(req)).exists()
