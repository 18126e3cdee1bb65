"""Catalogue sync into the DB, versions, search with facets, and group visibility."""

from pathlib import Path

import pytest
import yaml

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.catalogue import service
from datalabs.catalogue.loader import BUILTIN_DIR, load_directories
from datalabs.catalogue.schema import DatalabMeta
from datalabs.db.models import Datalab, DatalabVersion
from datalabs.errors import NotFound
from datalabs.runtimes import gpus
from tests.catalogue.test_loader import GOOD, write


def principal(db, name, role="user", groups=()):
    user = accounts.create_user(db, name, "long-enough-pw", role=role)
    return Principal(user=user, groups=frozenset(groups))


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "defs"
    write(root, "alpha", GOOD.replace("Good Lab", "Alpha Lab"))
    write(root, "alpha", GOOD.replace("Good Lab", "Alpha Lab").replace('"1.0"', '"0.9"'), "0.9")
    write(
        root,
        "beta",
        GOOD.replace("Good Lab", "Beta Desk")
        .replace(
            "kind: web\n  command: jupyter-lab --ServerApp.sock={socket}",
            "kind: desktop\n  desktop:\n    command: [no-such-viewer]\n"
            "  requires: [no-such-viewer]\n  packages: {no-such-viewer: no-such-package}",
        )
        .replace("[Gaia, Planck]", "[Euclid]"),
    )
    write(root, "secret", GOOD.replace("Good Lab", "Team Only") + "allowed_groups: [astro]\n")
    return root


def load(db, root):
    loaded, problems = load_directories([(root, "dir")])
    service.sync(db, loaded, problems)
    db.commit()


def test_search_filters_facets_and_versions(db, tree):
    load(db, tree)
    cat = service.Catalogue()
    ada = principal(db, "ada")
    result = cat.search(db, ada)
    assert [e.name for e in result.items] == ["alpha", "beta"]  # 'secret' is invisible to non-members
    assert dict(result.facets["kind"]) == {"web": 1, "desktop": 1}
    assert cat.get(db, ada, "alpha").versions == ["1.0", "0.9"]
    assert [e.name for e in cat.search(db, ada, filters={"kind": ["desktop"]}).items] == ["beta"]
    # facet counts of the filtered facet still show the siblings; others narrow
    narrowed = cat.search(db, ada, filters={"mission": ["euclid"]})
    assert narrowed.total == 1 and dict(narrowed.facets["mission"]) == {"Gaia": 1, "Planck": 1, "Euclid": 1}
    assert dict(narrowed.facets["kind"]) == {"desktop": 1}
    assert [e.name for e in cat.search(db, ada, q="alpha LAB").items] == ["alpha"]
    assert cat.search(db, ada, q="alpha beta").total == 0
    assert cat.search(db, ada, limit=1, offset=1).items[0].name == "beta"


def test_group_restricted_definitions(db, tree):
    load(db, tree)
    cat = service.Catalogue()
    member = principal(db, "mia", groups=["astro"])
    outsider = principal(db, "oscar", groups=["gnss"])
    admin = principal(db, "root", role="admin")
    assert cat.get(db, member, "secret").groups == ["astro"]
    assert cat.get(db, admin, "secret")
    with pytest.raises(NotFound):
        cat.get(db, outsider, "secret")
    assert "secret" not in [e.name for e in cat.search(db, outsider).items]


def test_resync_updates_removes_and_refreshes_snapshot(db, tree):
    load(db, tree)
    cat = service.Catalogue()
    ada = principal(db, "ada")
    assert cat.get(db, ada, "alpha").meta.title == "Alpha Lab"
    write(tree, "alpha", GOOD.replace("Good Lab", "Alpha Renamed"))
    (tree / "beta" / "datalab-meta.yml").unlink()
    (tree / "beta").rmdir()
    load(db, tree)
    assert cat.get(db, ada, "alpha").meta.title == "Alpha Renamed"
    with pytest.raises(NotFound):
        cat.get(db, ada, "beta")


def test_problems_are_stored_for_the_admin_page(db, tree):
    write(tree, "broken", "title: [")
    load(db, tree)
    (problem,) = service.problems(db)
    assert problem.path.endswith("broken/datalab-meta.yml") and "not valid YAML" in problem.reason


def test_unavailable_definitions_say_why(db, tree):
    load(db, tree)
    entry = service.Catalogue().get(db, principal(db, "ada"), "beta")
    assert not entry.available
    assert "no-such-viewer (Debian package no-such-package)" in entry.unavailable_reason


@pytest.mark.skipif(bool(gpus.discover()), reason="this host has GPUs: GPU datalabs are not refused here")
def test_a_datalab_needing_a_gpu_is_unavailable_on_a_host_without_one():
    (gpu_lab,) = [
        i for i in load_directories([(BUILTIN_DIR, "builtin")])[0] if i.meta.name == "jupyterlab-gpu"
    ]
    assert service.availability(gpu_lab.meta) == (False, "needs a GPU; this server has none")
    raw = gpu_lab.meta.model_dump(by_alias=True)
    raw["runtime"]["resources"]["default"]["gpu"] = 0  # GPUs optional: the GPU is not what stops it
    reason = service.availability(DatalabMeta.model_validate(raw))[1]
    assert "GPU" not in reason


def test_gpus_on_the_configured_device_root_or_a_gpu_cluster_make_a_gpu_datalab_available(tmp_path):
    from datalabs.config import Settings
    from tests.runtimes.test_gpus import make_node

    (gpu_lab,) = [
        i for i in load_directories([(BUILTIN_DIR, "builtin")])[0] if i.meta.name == "jupyterlab-gpu"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    none_here = Settings(home=tmp_path, labs={"gpu_device_root": str(empty)})
    assert service.availability(gpu_lab.meta, service.GpuSources.of(none_here))[1] == (
        "needs a GPU; this server has none"
    )
    make_node(empty / "nvidia0", 195, 0)  # a GPU at the configured root (a fake one)
    assert "GPU" not in service.availability(gpu_lab.meta, service.GpuSources.of(none_here))[1]
    for cluster, offers in (
        ({"name": "hpc", "backend": "slurm"}, False),  # a Slurm cluster that says nothing of GPUs
        ({"name": "hpc", "backend": "slurm", "options": {"gpu_partition": "gpu"}}, True),
        ({"name": "hpc", "backend": "slurm", "options": {"gpu_type": "a100"}}, True),
        ({"name": "hpc", "backend": "slurm", "resources": {"maximum": {"gpu": 2}}}, True),
    ):
        settings = Settings(
            home=tmp_path,
            labs={"gpu_device_root": str(tmp_path / "none")},
            clusters=[{"name": "local"}, cluster],
        )
        reason = service.availability(gpu_lab.meta, service.GpuSources.of(settings))[1]
        assert ("GPU" not in reason) is offers, (cluster, reason)


def test_version_ordering():
    versions = ["0.1.0-0", "0.1.0-10", "0.1.0-2", "weird", "1.0"]
    assert sorted(versions, key=service.version_key, reverse=True)[:2] == ["1.0", "0.1.0-10"]


def app_version(
    version: str, title: str, *, public=False, review=False, extra: str = "", name: str = "built"
) -> DatalabVersion:
    """One version of a datalab built on the platform, as builder.publish stores it: ada's, shared with
    the user `sam` and the group `optics`."""
    meta = DatalabMeta.model_validate(
        yaml.safe_load(GOOD.replace("Good Lab", title).replace('"1.0"', f'"{version}"') + extra)
        | {"name": name}
    ).model_dump(mode="json", by_alias=True)
    access = {"owner": "ada", "public": public, "review": review, "users": ["sam"], "groups": ["optics"]}
    return DatalabVersion(version=version, meta={**meta, "_app": access}, source_path="")


def test_versions_of_built_datalabs_are_seen_per_version(db, tree):
    """Published versions for everyone, the others for the author, whom it is shared with and admins;
    moderators see the one under review. Each principal's default is the newest version they see, and
    nothing of the versions they may not see (title, search words, metadata) reaches them."""
    load(db, tree)
    db.add(
        Datalab(
            name="built",
            source="db",
            versions=[
                app_version("0.1.0-0", "Aardvark Public", public=True),
                app_version("0.1.0-1", "Middle Public Astro", public=True, extra="allowed_groups: [astro]\n"),
                app_version("0.1.0-2", "Reviewed Draft", review=True),
                app_version("0.1.0-3", "Newest Secret"),
            ],
        )
    )
    db.add(
        Datalab(name="hidden", source="db", versions=[app_version("0.1.0-0", "Hidden Draft", name="hidden")])
    )
    service.bump(db)
    db.commit()
    cat = service.Catalogue()
    ada, eve, sam = principal(db, "ada"), principal(db, "eve"), principal(db, "sam")
    optic, mia = principal(db, "olga", groups=["optics"]), principal(db, "mia", groups=["astro"])
    mod, admin = principal(db, "mod", role="moderator"), principal(db, "root", role="admin")
    everything = ["0.1.0-3", "0.1.0-2", "0.1.0-1", "0.1.0-0"]
    expected = {
        ada: everything,
        sam: everything,
        optic: everything,
        admin: everything,
        eve: ["0.1.0-0"],  # 0.1.0-1 is published to astro only
        mia: ["0.1.0-1", "0.1.0-0"],
        mod: ["0.1.0-2", "0.1.0-0"],
    }
    for who, versions in expected.items():
        entry = cat.get(db, who, "built")
        assert entry.versions == versions, who.name
        assert entry.meta.version == versions[0] and entry.raw["version"] == versions[0], who.name
        assert [e.versions for e in cat.search(db, who, q="built").items] == [versions], who.name
        for v in everything:
            if v in versions:
                assert cat.version(db, who, "built", v)["version"] == v
            else:
                with pytest.raises(NotFound):
                    cat.version(db, who, "built", v)
    assert cat.get(db, eve, "built").meta.title == "Aardvark Public"
    assert cat.get(db, mod, "built").meta.title == "Reviewed Draft"
    assert cat.get(db, eve, "built") is cat.get(db, eve, "built")  # views are built once per snapshot
    # Listed by the title each principal sees.
    assert [e.name for e in cat.visible(db, eve)] == ["built", "alpha", "beta"]
    assert [e.name for e in cat.visible(db, ada)] == ["alpha", "beta", "hidden", "built"]
    # Search words and facets come only from what the principal sees.
    assert cat.search(db, eve, q="secret").total == 0 and cat.search(db, ada, q="secret").total == 1
    assert cat.search(db, mia, q="middle").total == 1 and cat.search(db, eve, q="middle").total == 0
    # A datalab with nothing published is hidden whole from the public, and from moderators (no review).
    for who in (eve, mod):
        with pytest.raises(NotFound):
            cat.get(db, who, "hidden")
        assert "hidden" not in [e.name for e in cat.visible(db, who)]
        assert not service.visible_to(next(e for e in cat.entries(db) if e.name == "hidden"), who)
    assert cat.get(db, ada, "hidden").versions == ["0.1.0-0"]
    # Definitions from files keep their group rules: every version for whoever may see the datalab.
    assert cat.get(db, eve, "alpha").versions == ["1.0", "0.9"]
