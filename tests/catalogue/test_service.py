"""Catalogue sync into the DB, versions, search with facets, and group visibility."""

import time
import weakref
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.catalogue import entries, generation, search, service
from datalabs.catalogue.loader import BUILTIN_DIR, load_directories
from datalabs.catalogue.schema import DatalabMeta
from datalabs.db.models import Counter, Datalab, DatalabVersion
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
    cat = search.Catalogue()
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
    cat = search.Catalogue()
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
    cat = search.Catalogue()
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
    entry = search.Catalogue().get(db, principal(db, "ada"), "beta")
    assert not entry.available
    assert "no-such-viewer (Debian package no-such-package)" in entry.unavailable_reason


@pytest.mark.skipif(bool(gpus.discover()), reason="this host has GPUs: GPU datalabs are not refused here")
def test_a_datalab_needing_a_gpu_is_unavailable_on_a_host_without_one():
    (gpu_lab,) = [
        i for i in load_directories([(BUILTIN_DIR, "builtin")])[0] if i.meta.name == "jupyterlab-gpu"
    ]
    assert entries.availability(gpu_lab.meta) == (False, "needs a GPU; this server has none")
    raw = gpu_lab.meta.model_dump(by_alias=True)
    raw["runtime"]["resources"]["default"]["gpu"] = 0  # GPUs optional: the GPU is not what stops it
    reason = entries.availability(DatalabMeta.model_validate(raw))[1]
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
    assert entries.availability(gpu_lab.meta, entries.GpuSources.of(none_here))[1] == (
        "needs a GPU; this server has none"
    )
    make_node(empty / "nvidia0", 195, 0)  # a GPU at the configured root (a fake one)
    assert "GPU" not in entries.availability(gpu_lab.meta, entries.GpuSources.of(none_here))[1]
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
        reason = entries.availability(gpu_lab.meta, entries.GpuSources.of(settings))[1]
        assert ("GPU" not in reason) is offers, (cluster, reason)


def test_version_ordering():
    versions = ["0.1.0-0", "0.1.0-10", "0.1.0-2", "weird", "1.0"]
    assert sorted(versions, key=entries.version_key, reverse=True)[:2] == ["1.0", "0.1.0-10"]


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
    generation.bump(db)
    db.commit()
    cat = search.Catalogue()
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
        assert not entries.visible_to(next(e for e in cat.entries(db) if e.name == "hidden"), who)
    assert cat.get(db, ada, "hidden").versions == ["0.1.0-0"]
    # Definitions from files keep their group rules: every version for whoever may see the datalab.
    assert cat.get(db, eve, "alpha").versions == ["1.0", "0.9"]


# ---- remembered searches ---------------------------------------------------------------------------


def test_a_remembered_search_is_dropped_when_the_catalogue_changes(db, tree):
    load(db, tree)
    cat = search.Catalogue(refresh_interval=3600)  # only this process's own commits may move it
    ada = principal(db, "ada")
    db.commit()
    assert [e.name for e in cat.search(db, ada, q="lab").items] == ["alpha"]
    remembered = cat.remembered(ada, q="lab")
    assert remembered is not None and [e.name for e in remembered.items] == ["alpha"]
    write(tree, "gamma", GOOD.replace("Good Lab", "Gamma Lab"))
    load(db, tree)  # commits: the next use asks the DB for the new generation
    assert cat.remembered(ada, q="lab") is None
    assert [e.name for e in cat.search(db, ada, q="lab").items] == ["alpha", "gamma"]
    # A change rolled back is no change: the snapshot stays fresh.
    generation.bump(db)
    db.rollback()
    assert [e.name for e in cat.remembered(ada, q="lab").items] == ["alpha", "gamma"]


def test_a_change_committed_elsewhere_shows_after_the_refresh_interval(db, tree):
    """Another replica's change reaches this process through the DB counter alone (no commit of ours)."""
    load(db, tree)
    cat = search.Catalogue(refresh_interval=0.2)
    ada = principal(db, "ada")
    db.commit()
    assert cat.search(db, ada, q="gamma").total == 0
    db.add(Datalab(name="gamma", source="db", versions=[app_version("1.0", "Gamma Lab", public=True)]))
    db.commit()  # not bumped through this session: as if another process had written it
    with db.get_bind().begin() as conn:
        conn.execute(update(Counter).where(Counter.name == "catalogue").values(value=Counter.value + 1))
    deadline = time.monotonic() + 30
    while cat.search(db, ada, q="gamma").total == 0:
        assert time.monotonic() < deadline, "the other process's change never showed"
        time.sleep(0.05)
    assert [e.name for e in cat.search(db, ada, q="gamma").items] == ["gamma"]


def test_a_remembered_search_follows_the_principals_groups(db, tree):
    load(db, tree)
    cat = search.Catalogue(refresh_interval=3600)
    user = accounts.create_user(db, "mia", "long-enough-pw")
    db.commit()
    outside, inside = (
        Principal(user=user, groups=frozenset()),
        Principal(user=user, groups=frozenset({"astro"})),
    )
    assert "secret" not in [e.name for e in cat.search(db, outside).items]
    assert "secret" in [e.name for e in cat.search(db, inside).items]  # joined the team
    assert "secret" not in [e.name for e in cat.remembered(outside).items]  # and left it again
    assert "secret" not in [e.name for e in cat.visible(db, outside)]


def test_another_audiences_remembered_search_is_never_served(db, tree):
    """Hostile: whoever searches first, a remembered answer reaches only those who may see all of it."""
    load(db, tree)
    cat = search.Catalogue(refresh_interval=3600)
    mia, root = principal(db, "mia", groups=["astro"]), principal(db, "root", role="admin")
    ada, oscar = principal(db, "ada"), principal(db, "oscar", groups=["gnss", "astro-team"])
    db.commit()
    for who in (mia, root):  # members and admins search first: their answers hold 'secret'
        assert [e.name for e in cat.search(db, who, q="only").items] == ["secret"]
        assert [e.name for e in cat.remembered(who, q="only").items] == ["secret"]
        assert "secret" in {e.name for e in cat.search(db, who).items}
    assert cat.remembered(ada, q="only") is None  # nobody of ada's audience asked yet
    for who in (ada, oscar):  # oscar's groups open nothing either: ada's answer is his too
        assert cat.search(db, who, q="only").total == 0
        assert cat.remembered(who, q="only").total == 0
        assert [e.name for e in cat.search(db, who).items] == ["alpha", "beta"]
        assert sum(c for _, c in cat.search(db, who).facets["kind"]) == 2  # nor counted in facets
    # Platform-built datalabs name users: then each user is an audience of their own.
    db.add(Datalab(name="built", source="db", versions=[app_version("0.1.0-0", "Built Draft")]))
    generation.bump(db)
    db.commit()
    sam, eve = principal(db, "sam"), principal(db, "eve")
    db.commit()
    assert [e.name for e in cat.search(db, ada, q="draft").items] == ["built"]  # the draft's author
    assert [e.name for e in cat.search(db, sam, q="draft").items] == ["built"]  # shared with sam
    assert cat.remembered(eve, q="draft") is None
    assert cat.search(db, eve, q="draft").total == 0 and cat.remembered(eve, q="draft").total == 0
    assert cat.search(db, oscar, q="draft").total == 0
    assert {e.name for e in cat.search(db, sam).items} == {"alpha", "beta", "built"}
    assert {e.name for e in cat.search(db, mia).items} == {"alpha", "beta", "secret"}


def test_remembered_searches_are_bounded_and_pages_come_from_one_answer(db, tree):
    load(db, tree)
    cat = search.Catalogue(refresh_interval=3600)
    ada = principal(db, "ada")
    db.commit()
    for i in range(search.REMEMBERED + 50):  # a client making up queries cannot grow memory without end
        assert cat.search(db, ada, q=f"lab {i}").total == 0
    snapshot = cat._current(db)
    assert len(snapshot.found) == search.REMEMBERED
    first, second = cat.search(db, ada, limit=1), cat.search(db, ada, limit=1, offset=1)
    assert [e.name for e in first.items + second.items] == ["alpha", "beta"] and first.total == 2
    assert [e.name for e in cat.remembered(ada, limit=1, offset=1).items] == ["beta"]
    assert first.facets is second.facets
    # filters in any order and case, repeated, are one search
    a = cat.search(db, ada, filters={"kind": ["Desktop", "web"], "mission": ["euclid"]})
    b = cat.remembered(ada, filters={"mission": ["EUCLID"], "kind": ["web", "desktop", "web"]})
    assert b is not None and b.facets is a.facets and [e.name for e in b.items] == ["beta"]


def test_one_caller_asks_the_db_when_the_interval_ran_out_the_others_are_answered(db, tree):
    load(db, tree)
    cat = search.Catalogue(refresh_interval=0.5)
    ada = principal(db, "ada")
    db.commit()
    cat.search(db, ada, q="lab")
    time.sleep(0.6)  # the interval ran out
    assert cat.remembered(ada, q="lab") is None  # this caller asks the DB (through `search`)...
    assert [e.name for e in cat.remembered(ada, q="lab").items] == ["alpha"]  # ...the others need not
    write(tree, "gamma", GOOD.replace("Good Lab", "Gamma Lab"))
    load(db, tree)  # a change committed here: nobody is answered from the old snapshot
    assert cat.remembered(ada, q="lab") is None and cat.remembered(ada, q="lab") is None
    assert [e.name for e in cat.search(db, ada, q="lab").items] == ["alpha", "gamma"]


def test_a_replaced_snapshot_is_freed_without_the_cycle_collector(db, tree):
    """Snapshots are kept out of the collector (gc.freeze): a replaced one must go by reference counting."""
    load(db, tree)
    cat = search.Catalogue(refresh_interval=3600)
    ada = principal(db, "ada")
    db.commit()
    cat.search(db, ada, q="lab")
    old = cat._current(db)
    gone = [weakref.ref(old), weakref.ref(old.entries[0]), weakref.ref(old.found[next(iter(old.found))])]
    del old
    write(tree, "gamma", GOOD.replace("Good Lab", "Gamma Lab"))
    load(db, tree)
    assert cat.search(db, ada, q="gamma").total == 1
    assert [ref() for ref in gone] == [None, None, None]
