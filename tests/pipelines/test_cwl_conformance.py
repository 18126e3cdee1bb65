"""The CWL v1.2 conformance suite's required non-docker tests through `datalabs cwl-runner` against a real
platform, with both engines (issue 14): every one must pass. The full non-required comparison with plain
`cwltool --no-container` is `python -m bench.cwl_conformance` (part of `make bench`).

Reproduce by hand: `.venv/bin/python -m tests.pipelines.cwl_conformance --engine both`.
"""

from __future__ import annotations

import os
import warnings

import pytest

from tests.pipelines import cwl_conformance as conformance

SUITE = conformance.SUITE
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800), pytest.mark.xdist_group("cwl-conformance")]


def test_required_non_docker_tests_pass_with_both_engines(tmp_path):
    if not conformance.available():
        # The suite sits beside the project (../shared/conformance), as in CI; `make test` requires it.
        if os.environ.get("DATALABS_REQUIRE_CONFORMANCE") == "1":
            pytest.fail(f"the CWL conformance suite is required (DATALABS_REQUIRE_CONFORMANCE=1): {SUITE}")
        pytest.skip(f"the CWL conformance suite is not beside this checkout ({SUITE})")
    engines = ["cwltool", "toil"]
    results = conformance.through_platform(tmp_path, engines, conformance.REQUIRED, jobs=2, retry=True)
    for engine, outcome in results.items():
        for name, reason in outcome.flaky.items():  # passed when run again alone: said, not hidden
            warnings.warn(f"{engine}: {name} failed once, then passed alone:\n{reason[-3000:]}", stacklevel=1)
        assert outcome.total >= 83, f"{engine}: only {outcome.total} tests ran"
        assert not outcome.failed, f"{engine}: {outcome.summary()}; failed:\n{outcome.explain()}"
        assert not outcome.unsupported, f"{engine}: unsupported: {outcome.unsupported}"
