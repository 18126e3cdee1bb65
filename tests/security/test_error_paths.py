"""Finding 10: failure reasons shown to users contained server paths (e.g. a run's reason
`../../<state dir>/pipelines/documents/v5.cwl`). A failing run is provoked in three ways that put
server paths into what cwltool and the tool print; its reason, through the API and on the run page,
must name the user's own objects only: no DATALABS_HOME, no absolute server path."""

from __future__ import annotations

import html
import re
import time

import pytest

from datalabs.config import Settings
from datalabs.runtimes.base import StartError
from datalabs.runtimes.testing import FakeRuntime
from tests.catalogue.test_loader import write
from tests.pipelines.conftest import register, wait_run

# An expression error: cwltool reports it with the document's path (relative to the worker's cwd).
BAD_EXPRESSION = """cwlVersion: v1.2
class: CommandLineTool
requirements: {InlineJavascriptRequirement: {}}
baseCommand: [echo]
arguments: [$(inputs.station.no.such.field)]
inputs:
  station: string
outputs: []
"""
# A tool whose error message names the files it was given (staged from the run's work dir).
NOISY = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo "cannot calibrate $0 in $PWD" >&2; exit 2']
arguments: [$(inputs.table.path)]
inputs:
  table: File
outputs: []
"""
# An absolute path anywhere on the server: `/x...` after a space, quote, parenthesis, '=' or ':'.
ABSOLUTE = re.compile(r"""(?:^|[\s'"(=:,\[])(/[A-Za-z0-9._-]+(?:/[^\s'")\],;:]*)?)""")
USER_VISIBLE = ("/media/home/", "/media/data/")  # the paths a lab shows its user are the user's own


LAB = """\
title: Leaky Lab
version: "1.0"
runtime:
  kind: web
  command: [fake-lab]
"""


class LeakyRuntime(FakeRuntime):
    """A runtime that, like the real ones, quotes where it looked when a start fails: here its log file,
    under the lab's folder in DATALABS_HOME."""

    async def start(self, spec):
        raise StartError(f"the lab exited with code 1 while starting: see {spec.log_path} (no output)")


@pytest.fixture
def settings(tmp_path, db_url):
    write(tmp_path / "defs", "leaky", LAB)
    return Settings(
        home=tmp_path / "state-home",
        db={"url": db_url},
        auth={"secret_key": "test-secret"},
        pipelines={"poll_interval": 0.2, "lease": 6, "scheduler_interval": 3600, "system": False},
        catalogue={"dirs": [tmp_path / "defs"], "builtin": False},
        labs={"backend": f"{__name__}:LeakyRuntime"},
    )


def _server_paths(text: str) -> list[str]:
    return [p for p in ABSOLUTE.findall(text) if not p.startswith(USER_VISIBLE)]


def _assert_no_server_paths(settings: Settings, client, run: dict) -> None:
    home = str(settings.home.resolve())
    reason = run["reason"]
    assert reason, run
    assert home not in reason and str(settings.home) not in reason, reason
    assert "state-home" not in reason, reason  # nor relative to somewhere: ../../state-home/...
    assert _server_paths(reason) == [], reason
    page = client.get(f"/runs/{run['id']}")
    assert page.status_code == 200
    box = re.search(r'class="failure-reason">(.*?)</p>', page.text, re.S)
    assert box is not None, page.text
    shown = html.unescape(box.group(1))
    assert home not in shown and "state-home" not in shown, shown
    assert _server_paths(shown) == [], shown


def test_expression_error_names_the_pipeline_not_the_document_store(people, settings):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "calibrate", BAD_EXPRESSION)
    r = ada.post("/api/v1/pipelines/calibrate/runs", json={"inputs": {"station": "KOUR"}})
    assert r.status_code == 202, r.text
    run = wait_run(ada, r.json()["id"])
    assert run["state"] == "failed", run
    _assert_no_server_paths(settings, ada, run)


def test_tool_error_with_staged_paths_names_no_server_path(people, settings):
    people.user("ada")
    ada = people.login("ada")
    ada.put("/api/v1/workspaces/me/files/tables/kour.txt", content=b"1 2 3\n")
    register(ada, "noisy", NOISY)
    inputs = {"table": {"class": "File", "location": "me/tables/kour.txt"}}
    r = ada.post("/api/v1/pipelines/noisy/runs", json={"inputs": inputs})
    assert r.status_code == 202, r.text
    run = wait_run(ada, r.json()["id"])
    assert run["state"] == "failed", run
    assert "cannot calibrate" in run["reason"]  # the tool's own words stay
    _assert_no_server_paths(settings, ada, run)


def test_lab_start_failure_names_no_server_path(people, settings):
    people.user("ada")
    ada = people.login("ada")
    r = ada.post("/api/v1/labs", json={"datalab": "leaky"})
    assert r.status_code == 202, r.text
    lab_id = r.json()["id"]
    deadline = time.monotonic() + 30
    while (lab := ada.get(f"/api/v1/labs/{lab_id}").json())["state"] not in ("failed", "running"):
        assert time.monotonic() < deadline, lab
        time.sleep(0.05)
    assert lab["state"] == "failed" and lab["reason"].startswith("the lab exited with code 1"), lab
    home = str(settings.home.resolve())
    assert home not in lab["reason"] and _server_paths(lab["reason"]) == [], lab["reason"]
    with ada.stream("GET", f"/api/v1/labs/{lab_id}/events") as events:
        text = "".join(events.iter_text())
    assert "exited with code 1" in text and home not in text and "state-home" not in text, text
    page = html.unescape(ada.get(f"/labs/{lab_id}").text)
    assert "exited with code 1" in page and home not in page and "state-home" not in page
