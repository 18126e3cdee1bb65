"""Acceptance, end to end with real parts (`datalabs serve`, the CLI, uv in bubblewrap reaching PyPI,
a bubblewrap lab, real JupyterLab behind the proxy): a site datalab declaring `environment:
requirements.txt` with a small PyPI package is unavailable until built; `datalabs catalogue build`
builds it through the API, following the log; a lab of it then starts with the built environment and
its kernel imports the package. A second build, from either CLI command, reuses the environment."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from websockets.sync.client import connect

from tests.catalogue.test_builds import tiny_datalab
from tests.cli.test_cli import run
from tests.labs.test_jupyter import execute, wait_running
from tests.live import DATALABS, live_server

pytestmark = pytest.mark.slow

PYPI_LAB = """\
title: PyPI Lab
abstract: JupyterLab with one small package from PyPI.
version: "1.0"
runtime:
  kind: web
  command:
    - jupyter-lab
    - --no-browser
    - --ServerApp.sock={socket}
    - --ServerApp.base_url={base_url}
    - --ServerApp.root_dir=/media
    - --ServerApp.allow_remote_access=True
  requires: ["jupyter-lab"]
  secret_env: JUPYTER_TOKEN
  secret_header: "Authorization: token {secret}"
  ready_path: "{base_url}api/status"
  python_packages: [termcolor]
  environment: requirements.txt
  requirements: ["jupyterlab>=4.3,<4.4", "termcolor>=2"]
"""


def test_a_catalogue_datalab_is_built_from_pypi_and_its_kernel_imports_it(tmp_path):
    site, home = tmp_path / "site", tmp_path / "home"
    (site / "pypi-lab").mkdir(parents=True)
    (site / "pypi-lab" / "datalab-meta.yml").write_text(PYPI_LAB)
    tiny_datalab(site, requirement="dl-tinypkg==9.9", name="broken-env")  # offline, and fails
    env = {"DATALABS_CATALOGUE__BUILTIN": "false", "DATALABS_CATALOGUE__DIRS": f'["{site}"]'}
    run(home, "admin", "create-user", "root", "--password", "long-enough-pw", "--admin")
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw")
    root_token = run(home, "admin", "create-token", "root").stdout.strip()
    ada_token = run(home, "admin", "create-token", "ada").stdout.strip()
    with live_server(home, env) as url:
        ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ada_token}"}, timeout=60)
        before = ada.get("/api/v1/datalabs/pypi-lab").json()
        assert not before["available"] and "not built yet" in before["unavailable_reason"]
        refused = ada.post("/api/v1/labs", json={"datalab": "pypi-lab"})
        assert refused.status_code == 422 and "not built yet" in refused.text

        as_root = {**env, "DATALABS_API_URL": url, "DATALABS_TOKEN": root_token}
        built = run(home, "catalogue", "build", "pypi-lab", env=as_root, check=False)
        assert built.returncode == 0, built.stdout + built.stderr
        assert "Not installed, jupyterlab" in built.stdout and "+ termcolor" in built.stdout
        assert "BUILD SUCCEEDED" in built.stdout and "pypi-lab 1.0: built" in built.stdout
        assert ada.get("/api/v1/datalabs/pypi-lab").json()["available"]

        failed = run(home, "catalogue", "build", "broken-env", env=as_root, check=False)
        assert failed.returncode == 1 and "broken-env 1.0: failed" in failed.stdout
        assert "dl-tinypkg==9.9" in failed.stdout
        as_ada = {**env, "DATALABS_API_URL": url, "DATALABS_TOKEN": ada_token}
        refused = run(home, "catalogue", "build", "broken-env", env=as_ada, check=False)
        assert refused.returncode == 1 and "administrators only" in refused.stderr

        lab = ada.post("/api/v1/labs", json={"datalab": "pypi-lab"})
        assert lab.status_code == 202, lab.text
        lab = wait_running(ada, lab.json()["id"])
        assert lab["state"] == "running", lab["reason"]
        base = lab["path"]
        kernel = ada.post(f"{base}api/kernels", json={})  # the default kernel: the built environment's
        assert kernel.status_code == 201, kernel.text
        ws_url = url.replace("http", "ws") + f"{base}api/kernels/{kernel.json()['id']}/channels?session_id=t"
        with connect(
            ws_url, additional_headers={"Authorization": f"Bearer {ada_token}"}, open_timeout=30
        ) as ws:
            assert execute(ws, "import termcolor; termcolor.colored('x', 'red') != 'x'") == "True"
            assert execute(ws, "import sys; sys.prefix.startswith('" + str(home / "envs") + "')") == "True"
        ada.post(f"/api/v1/labs/{lab['id']}/stop", json={})

        again = run(home, "catalogue", "build", "pypi-lab", env=as_root)
        assert "reusing environment" in again.stdout
    direct = run(home, "admin", "build-datalabs", "pypi-lab", env=env)
    assert "reusing environment" in direct.stdout


def kernel_says(client: httpx.Client, url: str, token: str, lab_id: str, code: str) -> str:
    lab = wait_running(client, lab_id)
    assert lab["state"] == "running", lab["reason"]
    base = lab["path"]
    kernel = client.post(f"{base}api/kernels", json={})  # the default kernel: the built environment's
    assert kernel.status_code == 201, kernel.text
    ws_url = url.replace("http", "ws") + f"{base}api/kernels/{kernel.json()['id']}/channels?session_id=t"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30) as ws:
        result = execute(ws, code)
    client.post(f"/api/v1/labs/{lab_id}/stop", json={})
    return result


def test_the_builtin_gnss_and_astro_labs_import_their_packages(tmp_path):
    """The built-in definitions as shipped, built from PyPI as `make run` does (the seed's own builder
    command): their kernels import what their descriptions promise."""
    home = tmp_path / "home"
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw")
    token = run(home, "admin", "create-token", "ada").stdout.strip()
    built = subprocess.run(
        [DATALABS, "admin", "build-datalabs", "jupyterlab-gnss", "jupyterlab-astro"],
        env={**os.environ, "DATALABS_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    with live_server(home) as url:
        ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        for name in ("jupyterlab-gnss", "jupyterlab-astro"):
            detail = ada.get(f"/api/v1/datalabs/{name}").json()
            assert detail["available"], detail["unavailable_reason"]
        gnss = ada.post("/api/v1/labs", json={"datalab": "jupyterlab-gnss"})
        assert gnss.status_code == 202, gnss.text
        code = "import georinex, hatanaka, xarray, matplotlib; georinex.load.__name__"
        assert kernel_says(ada, url, token, gnss.json()["id"], code) == "'load'"
        astro = ada.post("/api/v1/labs", json={"datalab": "jupyterlab-astro"})
        assert astro.status_code == 202, astro.text
        code = "import astropy.units as u, astroquery, matplotlib; str((1 * u.pc).to(u.m).unit)"
        assert kernel_says(ada, url, token, astro.json()["id"], code) == "'m'"
