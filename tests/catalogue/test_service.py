"""Catalogue sync into the DB, versions, search with facets, and group visibility."""

from pathlib import Path

import pytest

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.catalogue import service
from datalabs.catalogue.loader import load_directories
from datalabs.errors import NotFound
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


def test_version_ordering():
    versions = ["0.1.0-0", "0.1.0-10", "0.1.0-2", "weird", "1.0"]
    assert sorted(versions, key=service.version_key, reverse=True)[:2] == ["1.0", "0.1.0-10"]
