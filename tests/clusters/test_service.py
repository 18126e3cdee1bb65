"""clusters.visible: the clusters a principal may use."""

from types import SimpleNamespace

from datalabs.accounts.principal import Principal
from datalabs.clusters import service as clusters
from datalabs.config import Settings


def principal(role="user", groups=()) -> Principal:
    return Principal(user=SimpleNamespace(name="ada", role=role), groups=frozenset(groups))


def test_users_see_open_clusters_and_those_of_their_groups_admins_all(tmp_path):
    settings = Settings(
        home=tmp_path,
        clusters=[
            {"name": "local"},
            {"name": "gpu", "backend": "slurm", "allowed_groups": ["astro"]},
            {"name": "hpc", "backend": "slurm", "allowed_groups": ["optics", "hpc-users"]},
        ],
    )

    def names(p):
        return [c.name for c in clusters.visible(settings, p)]

    assert names(principal()) == ["local"]
    assert names(principal(groups=["astro"])) == ["local", "gpu"]
    assert names(principal(groups=["hpc-users", "astro"])) == ["local", "gpu", "hpc"]
    assert names(principal(role="admin")) == ["local", "gpu", "hpc"]
    assert names(principal(role="moderator")) == ["local"]


def test_a_launch_names_a_usable_cluster_or_gets_the_first_and_others_are_refused(tmp_path):
    import pytest

    from datalabs.errors import Invalid

    settings = Settings(
        home=tmp_path,
        clusters=[
            {"name": "local"},
            {"name": "secret", "allowed_groups": ["astro"]},
            {"name": "hpc", "backend": "slurm"},
        ],
    )
    ada = principal()
    assert clusters.for_launch(settings, ada, None).name == "local"
    assert clusters.for_launch(settings, principal(groups=["astro"]), "secret").name == "secret"
    for name in ("mars", "secret"):  # unknown, and another group's: the same answer, nothing revealed
        with pytest.raises(Invalid) as refused:
            clusters.for_launch(settings, ada, name)
        assert refused.value.code == "unknown_cluster" and "(yours: local, hpc)" in refused.value.message
    assert clusters.for_launch(settings, ada, "hpc").backend == "slurm"
