"""The suite's own scheduling: under `make test` (--dist loadgroup) every test is in an xdist group, so a
group's tests share one worker and its fixtures (a Slurm cluster, a test VM, a built datalab). pytest 9.2
stopped reading the group pytest-xdist 3.8 writes into the node id, and the groups were silently ignored
(pyproject.toml pins pytest below it): this fails when that happens again."""

import os

import pytest


def test_under_loadgroup_this_test_runs_in_its_modules_group(request):
    if not request.config.getoption("loadgroup", default=False):
        if os.environ.get("DATALABS_REQUIRE_PG") == "1":  # set by `make test`, which distributes by groups
            pytest.fail("`make test` runs the suite with --dist loadgroup; this run does not")
        pytest.skip("the suite is not distributed by xdist groups (--dist loadgroup) in this run")
    assert request.node.nodeid.endswith("@tests/test_suite_groups"), request.node.nodeid
