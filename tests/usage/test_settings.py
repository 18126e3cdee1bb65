"""`[quotas.<cluster>]` configuration: read from datalabs.toml, refused with the key and the reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datalabs.config import Settings

CLUSTERS = [{"name": "local"}, {"name": "hpc", "backend": "slurm"}]


def test_quotas_are_read_from_the_toml_file(tmp_path, monkeypatch):
    (tmp_path / "datalabs.toml").write_text(
        '[[clusters]]\nname = "local"\n[[clusters]]\nname = "hpc"\nbackend = "slurm"\n\n'
        '[quotas.hpc.user]\nlabs = 2\ncpu = 8\nmemory = "32G"\ngpu = 1\ncpu_hours = 500\ngpu_hours = 10\n\n'
        "[quotas.hpc.groups.astro]\ncpu = 32\n"
    )
    monkeypatch.setenv("DATALABS_CONFIG", str(tmp_path / "datalabs.toml"))
    quotas = Settings().quotas["hpc"]
    assert quotas.user.model_dump() == {
        "labs": 2, "cpu": 8.0, "memory": 32 * 10**9, "gpu": 1, "cpu_hours": 500.0, "gpu_hours": 10.0,
    }  # fmt: skip
    assert quotas.groups["astro"].cpu == 32 and quotas.groups["astro"].gpu is None  # unset: no limit


@pytest.mark.parametrize(
    ("quotas", "says"),
    [
        ({"gpu-cluster": {}}, "no cluster named gpu-cluster (configured: local, hpc)"),
        ({"hpc": {"user": {"cpus": 4}}}, "quotas.hpc.user.cpus"),
        ({"hpc": {"user": {"cpu": -1}}}, "greater than or equal to 0"),
        ({"hpc": {"user": {"memory": "lots"}}}, "'lots' is not a memory size"),
        ({"hpc": {"user": {"memory": True}}}, "is not a memory size"),
        ({"hpc": {"user": {"gpu_hours": "ten"}}}, "gpu_hours"),
        ({"hpc": {"groups": {"Bad Group!": {"cpu": 1}}}}, "'Bad Group!' is not a group name"),
        ({"hpc": {"team": {}}}, "quotas.hpc.team"),
    ],
)
def test_bad_quotas_are_refused_naming_the_key(quotas, says):
    with pytest.raises(ValidationError) as refused:
        Settings(clusters=CLUSTERS, quotas=quotas)
    assert says in str(refused.value)
