"""The layers stay one way (DESIGN §2): pages (`web/`) and API routers (`api/`) both call services and the
neutral request modules (`datalabs.deps`, `datalabs.limits`); neither imports the other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import datalabs

SRC = Path(datalabs.__file__).parent


def imported_modules(source: str, module: str) -> set[str]:
    """Every module `source` (the text of `module`, dotted) imports, absolute, relative ones resolved;
    `from package import name` counts as importing `package.name` too (it may be a module)."""
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def crossings(package: str, forbidden: str) -> list[str]:
    """`file: module` for every import of `forbidden` (or below it) in the modules of `package`."""
    out = []
    for path in sorted((SRC / package).rglob("*.py")):
        dotted = "datalabs." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        for name in imported_modules(path.read_text(), dotted):
            if name == forbidden or name.startswith(forbidden + "."):
                out.append(f"{path.relative_to(SRC)}: {name}")
    return out


def test_pages_import_nothing_from_the_api_routers():
    assert list((SRC / "web").rglob("*.py")), "no page modules found: the test would prove nothing"
    assert crossings("web", "datalabs.api") == []


def test_api_routers_import_nothing_from_the_pages():
    assert list((SRC / "api").rglob("*.py")), "no API modules found: the test would prove nothing"
    assert crossings("api", "datalabs.web") == []


@pytest.mark.parametrize(
    "source",
    [
        "import datalabs.api.deps",
        "from datalabs.api import limits",
        "from datalabs import api",
        "from datalabs.api.workspaces import operate",
        "from ..api import deps",
        "from .. import api",
        "def f():\n    from datalabs.api.auth import set_session_cookie\n",
    ],
)
def test_every_way_of_importing_the_api_is_seen(source):
    names = imported_modules(source, "datalabs.web.some_page")
    assert any(n == "datalabs.api" or n.startswith("datalabs.api.") for n in names), names


def test_neutral_imports_are_not_taken_for_the_api():
    source = "from datalabs.deps import get_db\nfrom datalabs import limits\nfrom . import render\n"
    names = imported_modules(source, "datalabs.web.some_page")
    assert names == {
        "datalabs.deps",
        "datalabs.deps.get_db",
        "datalabs",
        "datalabs.limits",
        "datalabs.web",
        "datalabs.web.render",
    }


def spawns(package: str) -> list[str]:
    """`file:line` of every call of a `.spawn(...)` method in the modules of `package`."""
    out = []
    for path in sorted((SRC / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "spawn"
            ):
                out.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return out


def test_routers_and_pages_launch_labs_through_the_service_only():
    """Commit, then start: labs.service.launch / restart do both (issue 16, Build 6), so no router or page
    can start a lab whose record was not committed, or forget to start one it recorded."""
    assert spawns("labs") != [], "the service's own spawn calls are not found: the test would prove nothing"
    assert spawns("api") == [] and spawns("web") == []
