"""The CWL v1.2 conformance suite's required non-docker tests through `datalabs cwl-runner` against a real
platform, with both engines (issue 14): every one must pass. The full non-required comparison with plain
`cwltool --no-container` is `python -m bench.cwl_conformance` (part of `make bench`).

Reproduce by hand: `.venv/bin/python -m tests.pipelines.cwl_conformance --engine both`.
"""

from __future__ import annotations

import pytest

from tests.pipelines import cwl_conformance as conformance

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.xdist_group("cwl-conformance"),
    pytest.mark.skipif(not conformance.SUITE.is_dir(), reason="the conformance suite is not shipped here"),
]


def test_required_non_docker_tests_pass_with_both_engines(tmp_path):
    results = conformance.through_platform(tmp_path, ["cwltool", "toil"], conformance.REQUIRED, jobs=2)
    for engine, outcome in results.items():
        assert outcome.total >= 83, f"{engine}: only {outcome.total} tests ran"
        assert not outcome.failed, f"{engine}: {outcome.summary()}; failed: {outcome.failed}"
        assert not outcome.unsupported, f"{engine}: unsupported: {outcome.unsupported}"
