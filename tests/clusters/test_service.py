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
