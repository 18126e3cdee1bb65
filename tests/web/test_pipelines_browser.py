"""Pipelines in a real browser (Debian's Chromium via Playwright) against `datalabs serve` with its warm
cwltool worker: launch the system hello-world pipeline from the generated form, watch its log on the run
page, see it succeed and find its output in the workspace file browser; and a slower pipeline whose log
lines arrive on the open page while it runs (the EventSource stream, no reload)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.web.test_browser import ADMIN, PASSWORD, SCREENSHOTS, _server, browser_page
from tests.web.test_browser import log_in as browser_log_in

pytestmark = pytest.mark.slow

TICKS = """cwlVersion: v1.2
class: CommandLineTool
label: Ticks
baseCommand: [sh, -c, 'echo "tick one"; sleep 3; echo "tick two"; sleep 3; echo "tick three"']
inputs: []
outputs: []
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    yield from _server(tmp_path_factory.mktemp("pipelines-home"))


def log_in(page) -> None:
    page.goto("/pipelines")
    browser_log_in(page, ADMIN, PASSWORD)
    expect(page).to_have_url(re.compile(r"/pipelines$"))


def test_launch_hello_world_from_the_form_and_find_its_output(server):
    with browser_page(server) as page:
        log_in(page)
        page.screenshot(path=str(SCREENSHOTS / "datalabs-pipelines.png"), full_page=True)
        page.goto("/pipelines/rinex-summary")
        expect(page.locator(".graph-box svg")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "datalabs-pipeline.png"), full_page=True)
        page.goto("/pipelines")
        # Live search narrows the catalogue to the banner pipeline.
        page.get_by_label("Search pipelines").press_sequentially("banner", delay=30)
        expect(page).to_have_url(re.compile(r"q=banner"))
        expect(page.locator(".pipeline-card")).to_have_count(1)
        page.locator('.pipeline-card[data-name="hello-world"]').get_by_role("link", name="Launch").click()
        expect(page).to_have_url(re.compile(r"/pipelines/hello-world/launch$"))

        # The form comes from the CWL inputs: the default is filled in; a schedule shows its policy.
        text = page.get_by_label("Text of the banner")
        expect(text).to_have_value("Hello, Datalabs!")
        expect(page.locator("#missed-policy")).to_contain_text("most recent missed time fires once")
        text.fill("Browser run")
        page.get_by_label("When the run fails").check()
        page.get_by_label("Webhook URL").fill("not a url")
        page.get_by_role("button", name="Launch", exact=True).click()
        # The service refuses the webhook; the message sits by the options and nothing typed is lost.
        expect(page.locator("#notify-error")).to_contain_text("a list of http(s) URLs")
        expect(page.get_by_label("Text of the banner")).to_have_value("Browser run")
        expect(page.get_by_label("When the run fails")).to_be_checked()
        page.get_by_label("When the run fails").uncheck()
        page.get_by_label("Webhook URL").fill("")
        page.screenshot(path=str(SCREENSHOTS / "datalabs-pipeline-launch.png"), full_page=True)
        page.get_by_role("button", name="Launch", exact=True).click()

        # The run page: the log shows the banner, the state ends as succeeded.
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+$"))
        run_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#run-log")).to_contain_text("| Browser run |", timeout=60_000)
        expect(page.locator("#run-state")).to_have_text("Succeeded", timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "datalabs-run.png"), full_page=True)
        page.get_by_role("link", name="Parameters").click()
        expect(page.locator("table")).to_contain_text("Browser run")

        # Outputs: into the workspace file browser, where the banner file is.
        page.get_by_role("link", name="Outputs").click()
        page.get_by_role("link", name=f"me/pipelines/hello-world/{run_id}/", exact=True).click()
        expect(page).to_have_url(re.compile(rf"/workspace/me/pipelines/hello-world/{run_id}/$"))
        banner = page.get_by_role("link", name="banner.txt", exact=True)
        expect(banner).to_be_visible()
        assert "| Browser run |" in page.request.get(banner.get_attribute("href")).text()

        # The run list links back to it.
        page.goto("/runs")
        expect(page.locator(f'tr[data-run="{run_id}"]')).to_contain_text("Succeeded")
        page.screenshot(path=str(SCREENSHOTS / "datalabs-runs.png"), full_page=True)
        # The refused form answered 422 on purpose (like the wrong password in test_browser); nothing else.
        refused = f"HTTP 422 {server}/pipelines/hello-world/launch"
        assert page.problems.count(refused) == 1 and not [p for p in page.problems if p != refused], (
            page.problems
        )


def test_log_lines_arrive_while_the_run_page_is_open(server):
    with browser_page(server) as page:
        log_in(page)
        csrf = page.request.get("/api/v1/me").json()["csrf_token"]  # as the platform's pages send it
        made = page.request.post(
            "/api/v1/pipelines",
            data={"name": "ticks", "cwl": TICKS, "filename": "ticks.cwl"},
            headers={"X-CSRF-Token": csrf},
        )
        assert made.status == 201, made.text()
        page.goto("/pipelines/ticks/launch")
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+$"))
        log = page.locator("#run-log")
        expect(log).to_contain_text("tick one", timeout=30_000)
        page.evaluate("window.stillTheSamePage = true")  # gone if the page were reloaded
        expect(log).to_contain_text("tick two", timeout=15_000)
        assert page.evaluate("window.stillTheSamePage === true")
        expect(page.locator("#run-state")).to_have_text("Running")
        # When the run ends, the page shows the final state by itself.
        expect(page.locator("#run-state")).to_have_text("Succeeded", timeout=30_000)
        expect(log).to_contain_text("tick three")
        assert not page.problems, page.problems


COUNT = """cwlVersion: v1.2
class: CommandLineTool
label: Count lines
baseCommand: [wc, -l]
stdout: lines.txt
inputs:
  data: {type: File, inputBinding: {position: 1}, label: Text file}
outputs:
  lines: {type: stdout}
"""


def test_editor_validates_as_you_type_then_pushes_and_the_picker_fills_the_form(server):
    with browser_page(server) as page:
        log_in(page)
        # Open a CWL file of the workspace (uploaded through the API) with the picker.
        csrf = page.request.get("/api/v1/me").json()["csrf_token"]  # as the platform's pages send it
        put = page.request.put(
            "/api/v1/workspaces/me/files/cwl/count-lines.cwl",
            data=COUNT,
            headers={"Content-Type": "application/octet-stream", "X-CSRF-Token": csrf},
        )
        assert put.ok, put.text()
        page.goto("/pipelines")
        page.get_by_role("link", name="New pipeline").click()
        page.get_by_role("button", name="Browse", exact=True).click()
        page.get_by_role("button", name="Open folder My workspace").click()
        page.get_by_role("button", name="Open folder cwl").click()
        page.get_by_role("button", name="Choose count-lines.cwl").click()
        expect(page.get_by_label("Open from a workspace")).to_have_value("me/cwl/count-lines.cwl")
        page.get_by_role("button", name="Open", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Edit count-lines")
        expect(page.get_by_label("CWL document")).to_have_value(COUNT)
        # Tabs (JavaScript): Code first; the other panels are hidden until chosen.
        expect(page.get_by_role("tab", name="Code")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#panel-details")).to_be_hidden()
        code = page.get_by_label("CWL document")
        code.fill(COUNT.replace("type: File", "type: Fiel"))
        expect(page.locator("#validation")).to_contain_text("Not valid yet", timeout=15_000)
        expect(page.locator("#validation")).to_contain_text("count-lines.cwl:7:10:")
        expect(page.locator("#cwl-gutter")).to_contain_text("10")
        page.screenshot(path=str(SCREENSHOTS / "datalabs-pipeline-editor-code.png"), full_page=True)
        code.fill(COUNT)
        expect(page.locator("#validation")).to_contain_text("Valid CWL", timeout=15_000)
        page.get_by_role("tab", name="Graph").click()
        expect(page.locator("#editor-graph svg")).to_be_visible()
        expect(page.locator("#panel-code")).to_be_hidden()
        page.get_by_role("tab", name="Test").click()
        expect(page.get_by_label("Text file")).to_be_visible()  # the test form follows the text
        page.get_by_role("tab", name="Details").click()
        page.get_by_label("Name", exact=True).fill("count-lines")
        page.get_by_label("Keywords").fill("text, lines")
        page.get_by_label("Version notes").fill("From the browser.")
        page.get_by_label("System pipeline (for everyone)").check()
        page.screenshot(path=str(SCREENSHOTS / "datalabs-pipeline-editor.png"), full_page=True)
        page.get_by_role("button", name="Push").click()
        expect(page).to_have_url(re.compile(r"/pipelines/count-lines$"))
        expect(page.get_by_role("status").first).to_contain_text("Pipeline 'count-lines' registered.")
        expect(page.locator(".pipeline-head .badge-system")).to_be_visible()

        # Launch it with a file chosen in the picker (uploaded to the workspace through the API first).
        put = page.request.put(
            "/api/v1/workspaces/me/files/notes/three.txt",
            data="a\nb\nc\n",
            headers={"Content-Type": "application/octet-stream", "X-CSRF-Token": csrf},
        )
        assert put.ok, put.text()
        page.get_by_role("link", name="Launch", exact=True).first.click()
        page.get_by_role("button", name="Browse files for Text file").click()
        page.get_by_role("button", name="Open folder My workspace").click()
        page.get_by_role("button", name="Open folder notes").click()
        page.get_by_role("button", name="Choose three.txt").click()
        expect(page.get_by_label("Text file")).to_have_value("me/notes/three.txt")
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page.locator("#run-state")).to_have_text("Succeeded", timeout=60_000)
        page.get_by_role("link", name="Outputs").click()
        expect(page.get_by_role("link", name=re.compile(r"lines\.txt$"))).to_be_visible()
        assert not page.problems, page.problems


@pytest.fixture(scope="module")
def slurm_server(tmp_path_factory, slurm_cluster) -> Iterator[str]:
    """The platform with this host and the test Slurm cluster, whose nodes share the platform's home."""
    home = tmp_path_factory.mktemp("pipelines-slurm-home")
    clusters = [
        {"name": "local", "title": "This server"},
        {
            "name": "hpc",
            "title": "HPC",
            "backend": "slurm",
            "options": {"slurm_conf": str(slurm_cluster.conf), "shared_dirs": [str(home)]},
        },
    ]
    yield from _server(home, {"DATALABS_CLUSTERS": json.dumps(clusters)})


@pytest.mark.xdist_group("slurm-platform")
def test_a_pipeline_launched_on_the_slurm_cluster_from_the_form_runs_there(slurm_server, slurm_cluster):
    with browser_page(slurm_server) as page:
        log_in(page)
        page.goto("/pipelines/hello-world/launch")
        cluster = page.get_by_label("Cluster")
        expect(cluster).to_have_value("local")  # the first of the user's clusters
        cluster.select_option(label="HPC (Slurm)")
        page.get_by_label("Text of the banner").fill("On Slurm")
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+$"))
        run_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#run-log")).to_contain_text("| On Slurm |", timeout=120_000)
        expect(page.locator("#run-state")).to_have_text("Succeeded", timeout=120_000)
        page.get_by_role("link", name="Parameters").click()
        facts = page.locator("dl.props").filter(has_text="Engine")
        expect(facts).to_contain_text(re.compile(r"Cluster\s*hpc"))
    ran = [j for j in slurm_cluster.completed_jobs() if j["Name"] == f"datalabs-run-{run_id}"]
    assert ran and {j["JobState"] for j in ran} == {"COMPLETED"}, ran
