"""Acceptance, end to end with real parts (`datalabs serve`, uv in bubblewrap, bubblewrap labs, real
JupyterLab behind the proxy): a folder with a notebook and a requirements.txt naming a small package
(from a local wheel, no network) builds; a lab of that version starts with the notebook at
/media/notebooks and opens on it; its default kernel runs in the built environment and imports the package."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.builder.support import make_sources, zip_of
from tests.labs.test_jupyter import admin, execute, wait_running
from tests.live import live_server

pytestmark = pytest.mark.slow


def test_built_datalab_runs_its_environment_in_a_real_lab(tmp_path):
    home = tmp_path / "home"
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    with live_server(home) as url:
        ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert ada.post("/api/v1/apps", json={"name": "tiny"}).status_code == 201
        data = zip_of(make_sources(tmp_path / "src"))
        r = ada.post("/api/v1/apps/tiny/versions", files={"files": ("src.zip", io.BytesIO(data))})
        assert r.status_code == 202, r.text
        with ada.stream("GET", "/api/v1/apps/tiny/versions/0.1.0-0/events", timeout=300) as events:
            text = "".join(events.iter_text())
        assert "event: built" in text, text

        lab = ada.post("/api/v1/labs", json={"datalab": "tiny", "version": "0.1.0-0"})
        assert lab.status_code == 202, lab.text
        lab = wait_running(ada, lab.json()["id"])
        assert lab["state"] == "running", lab["reason"]
        base = lab["path"]
        # It opens on the app's own notebook (its first, at /media/notebooks), not anybody's last layout.
        first = ada.get(base, follow_redirects=False)
        where = first.headers.get("location", "").split("?", 1)[0]  # Jupyter adds an empty query
        assert first.status_code == 302 and where.endswith("lab/tree/notebooks/analysis.ipynb"), where
        kernel = ada.post(f"{base}api/kernels", json={})  # the default kernel
        assert kernel.status_code == 201, kernel.text
        ws_url = url.replace("http", "ws") + f"{base}api/kernels/{kernel.json()['id']}/channels?session_id=t"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30) as ws:
            assert execute(ws, "import dl_tinypkg; dl_tinypkg.VALUE") == "42"
            assert execute(ws, "import sys; sys.prefix.startswith('" + str(home / "envs") + "')") == "True"
            assert (
                execute(ws, "sorted(__import__('os').listdir('/media/notebooks'))[0]") == "'analysis.ipynb'"
            )
        contents = ada.get(f"{base}api/contents")
        assert contents.status_code == 200
        ada.post(f"/api/v1/labs/{lab['id']}/stop", json={})
        time.sleep(0.1)
