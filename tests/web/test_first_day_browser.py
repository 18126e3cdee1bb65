"""A scientist's first day (issue 15's acceptance), in Debian's Chromium on a platform made exactly as
`make run` makes it: `datalabs admin seed-demo` (demo accounts, four demo volumes and a synthetic
archive of a million GNSS files indexed, the domain datalabs' environments built from the package index
by the platform's builder), then `datalabs serve`, with real sandboxed labs.

The demo scientist finds files by facets, opens a FITS image in JupyterLab Astro (a notebook whose first
cell ran and shows the image), the same file in SAOImage DS9 (started with it: its frame is not blank),
and sees that a RINEX file is offered only to datalabs that open RINEX. And no page of the platform
scrolls sideways at 1280×800 or 1920×1080 (every page a crawl from the catalogue reaches)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from datalabs.assets import notebooks
from datalabs.runtimes import desktop
from tests.live import DATALABS, destroy_labs, live_server
from tests.web.test_browser import browser_page
from tests.web.test_browser import log_in as browser_log_in
from tests.web.test_browser_jupyterlab import BAD

# No skip without bubblewrap: `make setup` installs it (a base package), so its absence is a failure.
pytestmark = pytest.mark.slow
FITS = "PlanckPublic:maps/LFI_SkyMap_030-cutout_demo.fits"
RINEX = "GsscDataProducts:rinex/2010/064/ESA100DEU_R_20100640000_01D_30S_MO.rnx"
# Distinct colours in the middle band of the desktop (below DS9's buttons, above its colour bar): its
# frame, blank white without an image, the image's many greys with one.
FRAME_COLOURS = """() => {
  const canvas = document.querySelector('#screen canvas');
  if (!canvas || !canvas.width) return 0;
  const top = Math.floor(canvas.height * 0.35), bottom = Math.floor(canvas.height * 0.9);
  const data = canvas.getContext('2d').getImageData(0, top, canvas.width, bottom - top).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 3) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size;
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("first-day")
    seeded = subprocess.run(
        [DATALABS, "admin", "seed-demo"],
        env={"DATALABS_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    creds = json.loads((home / "demo-credentials.json").read_text())
    with live_server(home) as base:
        try:
            yield base, creds, seeded.stdout, home
        finally:
            destroy_labs(base, "admin", creds["admin"])


def log_in(page, creds: dict, who: str = "scientist") -> None:
    page.goto("/login")
    browser_log_in(page, who, creds[who])
    expect(page).to_have_url(re.compile(r"/catalogue$"))


def choices(page) -> list[str]:
    return page.locator("#open-dialog .open-choices button").all_inner_texts()


def test_a_scientists_first_day(demo):
    base, creds, seeded, _ = demo
    assert "built" in seeded or "reused" in seeded, seeded  # the domain datalabs' environments
    with browser_page(base) as page:
        log_in(page, creds)
        page.goto("/explorer")
        expect(page.locator("#result-count")).to_contain_text(re.compile(r"of 1,000,\d{3}"))
        facet = lambda name: page.locator(f'fieldset[data-facet="{name}"]')  # noqa: E731
        facet("domain").get_by_label(re.compile("^Astronomy")).check()
        expect(page.locator("#result-count")).not_to_contain_text("1,000,")
        facet("mission").get_by_label(re.compile("^Planck")).check()
        rows = page.locator(".assets-table tbody tr")
        expect(rows).to_have_count(2)  # the two Planck cutouts
        row = rows.filter(has_text="LFI_SkyMap_030")
        row.get_by_role("link", name=re.compile("in a datalab")).click()
        dialog = page.locator("#open-dialog")
        expect(dialog).to_contain_text("Datalabs that open image/fits files")
        offered = choices(page)
        assert offered[0] == "Launch JupyterLab Astro", offered  # best first
        assert "Launch SAOImage DS9" in offered and "Launch JupyterLab GNSS" not in offered

        # JupyterLab Astro, in a new tab: a notebook whose first cell ran and shows the image.
        with page.context.expect_page() as opened:
            dialog.get_by_role("button", name="Launch JupyterLab Astro").click()
        lab = opened.value
        lab.wait_for_url(
            re.compile(r"/lab/tree/home/my_workspace/from-explorer/.*\.fits\.ipynb$"), timeout=180_000
        )
        image = lab.locator(".jp-NotebookPanel .jp-OutputArea-output img").first
        expect(image).to_be_visible(timeout=120_000)
        assert image.evaluate("img => img.naturalWidth") > 100  # matplotlib's picture of it
        expect(lab.locator(".jp-NotebookPanel .jp-InputPrompt", has_text="[1]").first).to_be_visible()
        lab.close()

        # The same file in DS9: it starts with the file, and its frame shows it.
        if shutil.which("ds9") is None or desktop.missing_tools():
            pytest.fail("SAOImage DS9 and the desktop tools are part of the platform's set-up")
        page.goto("/explorer/open?id=" + FITS)
        with page.context.expect_page() as opened:
            page.get_by_role("button", name="Launch SAOImage DS9").click()
        ds9 = opened.value
        ds9.wait_for_selector("body[data-state=connected]", timeout=180_000)
        deadline = time.monotonic() + 60
        while (colours := ds9.evaluate(FRAME_COLOURS)) <= 20 and time.monotonic() < deadline:
            time.sleep(0.5)
        if colours <= 20:
            ds9.screenshot(path="/tmp/first-day-ds9.png")
        assert colours > 20, f"DS9's frame is blank ({colours} colours): see /tmp/first-day-ds9.png"
        ds9.close()

        # A RINEX file: only the datalabs that open RINEX.
        page.goto("/explorer?q=ESA100DEU_R_20100640000_01D_30S_MO")
        page.locator(".assets-table tbody tr").filter(has_text="MO.rnx").get_by_role(
            "link", name=re.compile("in a datalab")
        ).click()
        expect(page.locator("#open-dialog")).to_contain_text("Datalabs that open application/x-rinex files")
        assert [c for c in choices(page) if c.startswith("Launch")] == ["Launch JupyterLab GNSS"]
        assert [p for p in page.problems if BAD.match(p)] == [], page.problems


SKIP = ("/logout", "/datalabs/", "/api/", "/static/", "/stac", "/healthz", "/metrics")


def _key(path: str) -> str:
    """Pages that differ only by an id or a number are one page for this check."""
    return re.sub(r"[0-9a-f]{8,}|\d+", "N", path)


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
def test_no_page_scrolls_sideways(demo, size):
    base, creds, _, _ = demo
    with browser_page(base, viewport={"width": size[0], "height": size[1]}) as page:
        log_in(page, creds, "admin")  # an administrator reaches every page
        todo, seen, visited = ["/catalogue", "/explorer/open?id=" + FITS], set(), []
        while todo and len(visited) < 80:
            url = todo.pop(0)
            if _key(urlsplit(url).path) in seen:
                continue
            seen.add(_key(urlsplit(url).path))
            page.goto(url)
            page.wait_for_load_state("load")
            page.wait_for_timeout(100)  # the page's own check runs just after load
            visited.append(url)
            for href in page.locator("a[href^='/']:not([download])").evaluate_all(
                "links => links.map(a => a.getAttribute('href'))"
            ):
                if not href.startswith(SKIP) and _key(urlsplit(href).path) not in seen:
                    todo.append(href)
        assert len(visited) > 25, visited  # the crawl really went round the platform
        sideways = [p for p in page.problems if p.startswith("horizontal scroll")]
        assert sideways == [], sideways


FIRST_CELLS = [
    ("jupyterlab-astro", "image/fits", "PlanckPublic/maps/LFI_SkyMap_070-cutout_demo.fits"),
    (
        "jupyterlab-gnss",
        "application/x-rinex",
        "GsscDataProducts/rinex/2010/064/ESA100DEU_R_20100640000_01D_30S_MO.crx.gz",
    ),
    (
        "jupyterlab-gnss",
        "application/x-rinex",
        "GsscDataProducts/rinex/2010/064/BRDC00WRD_R_20100640000_01D_GN.rnx",
    ),
    ("jupyterlab-gnss", "application/x-netcdf", "ClimateSample/sst/sst_anomaly_2020Q1_demo.nc"),
]


@pytest.mark.parametrize(
    ("datalab", "media_type", "demo_file"), FIRST_CELLS, ids=[c[2].rsplit("/", 1)[1] for c in FIRST_CELLS]
)
def test_every_first_cell_loads_its_demo_file_and_draws_it(demo, datalab, media_type, demo_file):
    """The notebook Open in Datalab makes for each kind of demo file: its first cell runs in the datalab's
    built environment and draws a figure (here without a lab: the same interpreter, a headless backend)."""
    home = demo[3]
    status = json.loads(next((home / "catalogue" / "builds" / datalab).glob("*/status.json")).read_text())
    assert status["state"] == "built", status
    code = notebooks.first_cell(media_type, str(home / "volumes" / demo_file))
    check = code + "\nassert plt.get_fignums(), 'no figure drawn'\n"
    ran = subprocess.run(
        [f"{status['env']}/bin/python", "-c", check],
        env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
