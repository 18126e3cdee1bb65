"""What the MLOps tests share: one `datalabs serve` for the whole of tests/mlops (session scope), with the
builtin `mlflow`, `jupyterlab-ml` and `mlflow-model` datalabs built once (uv, PyPI plus the site's wheel
directory for PyTorch's CPU build), users and teams, and clients. Its labs are ended at the end."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.cli.test_cli import run
from tests.live import destroy_labs, live_server

PW = "long-enough-pw"
USERS = ("ada", "bob", "carol", "dora", "eve", "fay")
TEAMS = {"astro": ("ada", "bob"), "helio": ("carol",), "optics": ("dora", "fay")}


def build(root: httpx.Client, name: str) -> None:
    started = root.post(f"/api/v1/datalabs/{name}/build")
    assert started.status_code in (202, 409), started.text
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        state = root.get(f"/api/v1/datalabs/{name}/build").json()
        if state["state"] not in ("queued", "building"):
            assert state["state"] == "built", state
            return
        time.sleep(1)
    raise AssertionError(f"{name} was not built in 15 min")


def client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=120)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """(home, url, tokens): root (admin); ada and bob in team astro, carol in helio, dora and fay in optics,
    eve in none; every team with its workspace."""
    home = tmp_path_factory.mktemp("mlflow-home")
    run(home, "admin", "create-user", "root", "--password", PW, "--admin")
    for user in USERS:
        run(home, "admin", "create-user", user, "--password", PW)
    for team, members in TEAMS.items():
        run(home, "admin", "create-group", team)
        for member in members:
            run(home, "admin", "add-member", team, member)
    tokens = {u: run(home, "admin", "create-token", u).stdout.strip() for u in ("root", *USERS)}
    with live_server(home) as url:
        try:
            root = client(url, tokens["root"])
            for team in TEAMS:
                made = root.post("/api/v1/workspaces", json={"team": team})
                assert made.status_code == 201, made.text
            for name in ("mlflow", "jupyterlab-ml", "mlflow-model"):
                build(root, name)
            yield home, url, tokens
        finally:
            destroy_labs(url, "root", PW)  # labs outlive the platform by design: none may outlive the tests
