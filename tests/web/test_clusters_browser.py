"""Choosing where a lab runs, in Chromium (issue 16 acceptance): the launch dialog offers this server and the
HPC cluster (the suite's real Slurm) with what each can give now; a lab launched on the HPC cluster while
its node is full shows Slurm's queue reason as its start progress, then opens once the node frees up, and
My datalabs says where it runs and when its time limit ends it. JupyterLab launched there from the dialog
runs `1 + 1` in the browser, over the proxied kernel WebSocket."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.labs.test_restart import DEFINITION, LABAPP
from tests.live import destroy_labs
from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page
from tests.web.test_browser import log_in as browser_log_in

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm-platform")]


@pytest.fixture
def base(tmp_path, slurm_cluster) -> Iterator[str]:
    home = tmp_path / "home"
    (home / "defs" / "mini").mkdir(parents=True)
    (home / "defs" / "mini" / "datalab-meta.yml").write_text(DEFINITION)
    shutil.copy(LABAPP, home / "defs" / "mini" / "labapp.py")
    (home / "datalabs.toml").write_text(
        '[[clusters]]\nname = "local"\ntitle = "This server"\n\n'
        '[[clusters]]\nname = "hpc"\ntitle = "HPC cluster"\nbackend = "slurm"\n'
        'description = "The institute\'s batch cluster: labs wait their turn in its queue."\n'
        f'[clusters.options]\nslurm_conf = "{slurm_cluster.conf}"\ntime_limit = "8:00:00"\n'
    )
    env = {"DATALABS_CATALOGUE__DIRS": json.dumps([str(home / "defs")])}  # and the built-in JupyterLab
    for url in _server(home, env):
        try:
            yield url
        finally:
            destroy_labs(url, ADMIN, PASSWORD)
            slurm_cluster.cancel_all()


def log_in(page) -> None:
    page.goto("/login")
    browser_log_in(page, ADMIN, PASSWORD)
    expect(page).to_have_url(re.compile(r"/catalogue$"))


def test_the_launch_dialog_places_a_lab_on_the_hpc_cluster_and_shows_its_queue_reason(base, slurm_cluster):
    blocker = slurm_cluster.sbatch(
        "#!/bin/sh\nsleep 300\n", f"--cpus-per-task={slurm_cluster.cpus}", "--output=/dev/null"
    )
    slurm_cluster.wait_job(blocker, {"RUNNING"})
    with browser_page(base) as page:
        log_in(page)
        page.goto("/catalogue/mini/launch")
        here, hpc = page.get_by_label("This server"), page.get_by_label("HPC cluster")
        expect(here).to_be_checked()
        expect(page.locator("#cluster-1-now")).to_have_text("starts right away")
        # The node is full: the HPC cluster says so before anyone launches there.
        expect(page.locator("#cluster-2-now")).to_contain_text(f"0 of {slurm_cluster.cpus} CPUs free")
        expect(page.get_by_text("labs wait their turn in its queue")).to_be_visible()
        hpc.check()
        page.get_by_role("button", name="Launch", exact=True).click()

        expect(page).to_have_url(re.compile(r"/labs/[0-9a-f]+$"))
        lab_id = page.url.rsplit("/", 1)[1]
        progress = page.locator("#progress-log")
        expect(progress).to_contain_text("waiting for resources: Resources", timeout=30_000)
        slurm_cluster.run("scancel", blocker)
        page.wait_for_url(re.compile(rf"/datalabs/{lab_id}/$"), timeout=60_000)  # it opens once ready

        page.goto("/labs")
        card = page.locator(f"[data-lab='{lab_id}']")
        expect(card.locator(".lab-cluster")).to_have_text("HPC cluster")
        expect(card.locator(".lab-walltime")).to_contain_text("8:00:00: ends by")
        assert not page.problems, page.problems


def test_jupyterlab_launched_on_the_hpc_cluster_runs_a_cell_in_the_browser(base, slurm_cluster):
    with browser_page(base) as page:
        log_in(page)
        page.goto("/catalogue/jupyterlab/launch")
        page.get_by_label("HPC cluster").check()
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page.locator("#progress-log")).to_contain_text("as Slurm job", timeout=30_000)
        page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/lab"), timeout=120_000)
        lab_id = re.search(r"/datalabs/([0-9a-f]+)/", page.url)[1]
        assert slurm_cluster.queued(), "no Slurm job runs the lab"

        page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=60_000)
        # Idle in the status bar: the kernel on the node is connected over the proxied WebSocket.
        expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first).to_be_visible(timeout=60_000)
        cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
        cell.click()
        page.keyboard.type("1 + 1")
        expect(cell).to_contain_text("1 + 1")
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
        expect(output).to_have_text("2", timeout=60_000)

        page.goto("/labs")
        expect(page.locator(f"[data-lab='{lab_id}'] .lab-cluster")).to_have_text("HPC cluster")
        bad = re.compile(r"^(HTTP (401|403|5\d\d) |outside request|page error|horizontal scroll)")
        assert [p for p in page.problems if bad.match(p)] == []  # JupyterLab's optional 404s are fine
