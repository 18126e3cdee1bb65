"""Helpers for the labs page tests: fake datalab definitions, settings with the fake runtime, and a
browser-like client that launches labs and waits for their state."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from fastapi.testclient import TestClient

from datalabs.config import Settings
from tests.web.conftest import csrf_from

FAKE = """\
title: {title}
abstract: A lab for tests.
version: "{version}"
runtime:
  kind: web
  command: [{command}]
  resources:
    default: {{cpu: 1, memory: 1G}}
    maximum: {{cpu: 2, memory: 4G}}
"""
HTML = {"Accept": "text/html,application/xhtml+xml"}


def _write(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalab-meta.yml").write_text(text)


def lab_settings(tmp_path: Path, catalogue_dir: Path) -> Settings:
    """Settings with the fake runtime, a limit of 2 labs, and three datalabs: `fake` (starts, two versions),
    `crashy` (fails while starting) and `slow` (keeps starting for a minute)."""
    for name, title, command in (
        ("fake", "Fake Lab", "fake-lab"),
        ("crashy", "Crashy Lab", "fake-crash"),
        ("slow", "Slow Lab", "fake-hang"),
    ):
        _write(catalogue_dir / name, FAKE.format(title=title, version="1.0", command=command))
    _write(
        catalogue_dir / "fake" / "versions" / "0.9",
        FAKE.format(title="Fake Lab", version="0.9", command="fake-lab"),
    )
    return Settings(
        home=tmp_path / "home",
        catalogue={"dirs": [catalogue_dir], "builtin": False},
        labs={
            "backend": "datalabs.runtimes.testing:FakeRuntime",
            "max_running_per_user": 2,
            "start_timeout": 60,
        },
    )


def browser(client: TestClient) -> TestClient:
    """Another browser on the same app, sharing its event loop so that background lab starts live on."""
    other = TestClient(client.app, headers=HTML)
    other.portal = client.portal
    return other


def launch(client: TestClient, datalab: str = "fake", **fields):
    token = csrf_from(client.get(f"/catalogue/{datalab}/launch").text)
    return client.post(
        f"/catalogue/{datalab}/launch", data={**fields, "csrf_token": token}, follow_redirects=False
    )


def launched(client: TestClient, datalab: str = "fake", **fields) -> str:
    r = launch(client, datalab, **fields)
    assert r.status_code == 303, r.text
    match = re.fullmatch(r"/labs/([0-9a-f]+)", r.headers["location"])
    assert match, r.headers["location"]
    return match.group(1)


def wait_state(client: TestClient, lab_id: str, states=("running", "failed")) -> dict:
    for _ in range(200):
        lab = client.get(f"/api/v1/labs/{lab_id}", headers={"Accept": "application/json"}).json()
        if lab["state"] in states:
            return lab
        time.sleep(0.05)
    raise AssertionError(f"lab stayed {lab['state']}")


def text_of(page: str) -> str:
    """The words of a page as a reader gets them: no tags, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page)))
