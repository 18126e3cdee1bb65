"""The `datalabs` command for real: admin bootstrap on a home, then client commands over HTTP."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from datalabs.runtimes.desktop import missing_tools as desktop_missing
from tests.live import DATALABS, live_server

pytestmark = pytest.mark.slow


def run(home, *args, env=None, check=True, input=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DATALABS_HOME": str(home), "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [DATALABS, *args], env=full_env, capture_output=True, text=True, input=input, timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli-home")
    run(home, "admin", "create-user", "root", "--password", "long-enough-pw", "--admin")
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw", "--email", "ada@example.org")
    run(home, "admin", "create-group", "astro-team")
    run(home, "admin", "add-member", "astro-team", "ada", "--role", "owner")
    with live_server(home) as url:
        yield home, url


def test_admin_errors_are_clear(platform):
    home, _ = platform
    dup = run(home, "admin", "create-user", "ada", "--password", "long-enough-pw", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = run(home, "admin", "add-member", "nope", "ada", check=False)
    assert bad.returncode == 1 and "no group 'nope'" in bad.stderr


def test_create_token_prints_the_token_alone_and_it_works(platform):
    home, url = platform
    token = run(
        home, "admin", "create-token", "ada", "--scopes", "catalogue:read", "--expires-in", "3600"
    ).stdout
    assert token.strip().startswith("dl_") and len(token.strip().split()) == 1
    env = {
        "DATALABS_API_URL": url,
        "DATALABS_TOKEN": token.strip(),
        "DATALABS_CREDENTIALS": str(home / "none"),
    }
    listed = json.loads(run(home, "catalogue", "ls", "--kind", "desktop", "--json", env=env).stdout)
    assert listed["total"] >= 7 and {d["kind"] for d in listed["items"]} == {"desktop"}


def test_login_then_catalogue_commands(platform, tmp_path):
    home, url = platform
    env = {"DATALABS_CREDENTIALS": str(tmp_path / "creds.json")}
    out = run(home, "login", url, "--username", "ada", "--password", "long-enough-pw", env=env).stdout
    assert "logged in" in out and "ada" in out
    assert oct((tmp_path / "creds.json").stat().st_mode & 0o777) == "0o600"
    assert "astro-team" in run(home, "whoami", env=env).stdout
    table = run(home, "catalogue", "ls", "gnss", env=env).stdout
    assert "jupyterlab-gnss" in table and "topcat" not in table
    shown = run(home, "catalogue", "show", "jupyterlab", "--version", "4.2.0", env=env).stdout
    assert "4.2.0" in shown and '"version": "4.2.0"' in shown
    desktop = run(home, "catalogue", "show", "topcat", env=env).stdout
    if desktop_missing(["topcat"], {"topcat": "topcat"}):  # unavailable says which package is missing
        assert "not available yet" in desktop and "Debian package" in desktop
    else:
        assert "not available yet" not in desktop
    missing = run(home, "catalogue", "show", "nope", env=env, check=False)
    assert missing.returncode == 1 and "no datalab 'nope'" in missing.stderr


def test_wrong_password_and_unreachable_server(platform, tmp_path):
    home, url = platform
    env = {"DATALABS_CREDENTIALS": str(tmp_path / "creds.json")}
    bad = run(home, "login", url, "--username", "ada", "--password", "wrong-password", env=env, check=False)
    assert bad.returncode == 1 and "wrong user name or password" in bad.stderr
    assert not (tmp_path / "creds.json").exists()
    gone = run(home, "catalogue", "ls", env={**env, "DATALABS_API_URL": "http://127.0.0.1:9"}, check=False)
    assert gone.returncode == 1 and "cannot reach" in gone.stderr


def test_seed_demo_is_idempotent(tmp_path):
    # Datalabs with requirements get their environments built (issue 15, Build 3); here a site datalab
    # installing a wheel from its folder stands in for the built-in ones, which download from PyPI.
    from tests.catalogue.test_builds import tiny_datalab

    tiny_datalab(tmp_path / "site")
    tiny_datalab(tmp_path / "site", requirement="dl-tinypkg==9.9", name="broken-env")  # fails, seed goes on
    env = {"DATALABS_CATALOGUE__BUILTIN": "false", "DATALABS_CATALOGUE__DIRS": f'["{tmp_path / "site"}"]'}
    first = run(tmp_path / "home", "admin", "seed-demo", env=env).stdout
    assert "admin /" in first and "scientist /" in first
    # The explorer is full out of the box (issue 15): the demo volumes harvested, the synthetic archive
    # ingested once; a second seed reads nothing again and adds nothing.
    assert "explorer: 12 demo files and 1,000,000 synthetic GNSS files indexed" in first
    assert "Building the environment of tiny 1.0" in first and "datalab tiny 1.0: environment built" in first
    assert "datalab broken-env 1.0: NOT AVAILABLE, its build failed: " in first  # and seed-demo exits 0
    second = run(tmp_path / "home", "admin", "seed-demo", env=env).stdout
    assert "datalab tiny 1.0: environment reused (requirements unchanged)" in second
    same = [line for line in first.splitlines() if "tiny" not in line]
    assert [line for line in second.splitlines() if "tiny" not in line] == same
    stats = json.loads(run(tmp_path / "home", "assets", "stats").stdout)
    assert stats["assets"] == 1_000_012
    assert stats["collections"] == [
        "ClimateSample",
        "GsscArchive",
        "GsscDataProducts",
        "JwstPublic",
        "PlanckPublic",
    ]
