"""A policy survives the JSON trip to a Slurm node (lab specs, pipeline step files) unchanged."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from datalabs.sandbox.bwrap import ApiAccess
from datalabs.sandbox.devices import DeviceRule
from datalabs.sandbox.identity import Identity
from datalabs.sandbox.policy import Policy


def test_a_policy_comes_back_from_its_json_form_as_it_was():
    policy = Policy(
        identity=Identity(1000000001, 1000000001, (2000000001,), "ada", ("astro",)),
        network="outbound",
        api=ApiAccess(Path("/run/datalabs-api"), 8750),
        pids_max=1024,
        blocked_networks=("10.0.0.0/8",),
        allowed_networks=("10.1.2.3/32",),
        devices=(DeviceRule("c", 195, 0), DeviceRule("c", 1, None, "rwm")),
    )
    again = Policy.from_dict(json.loads(json.dumps(asdict(policy), default=str)))
    assert again == policy and hash(again) == hash(policy)
    assert Policy.from_dict(json.loads(json.dumps(asdict(Policy())))) == Policy()
