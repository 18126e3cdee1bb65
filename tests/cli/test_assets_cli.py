"""`datalabs assets`: synth + ingest a listing, harvest a registered volume (incremental), then search
through a live server with the CLI."""

from __future__ import annotations

import json

import pytest

from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.db.models import Volume
from tests.assets import samples
from tests.cli.test_cli import run
from tests.live import live_server

pytestmark = pytest.mark.slow


def test_synth_ingest_harvest_and_search(tmp_path):
    home = tmp_path / "home"
    run(home, "admin", "create-user", "root", "--password", "long-enough-pw", "--admin")
    out = run(home, "assets", "synth", "--n", "3000", "--out", str(tmp_path / "l.txt"), "--ingest").stdout
    assert "3,000 assets ingested into 'GsscDataProducts'" in out
    volume = tmp_path / "Archive"
    samples.write_rinex(volume / "gnss")
    (volume / "astro").mkdir()
    samples.write_fits(volume / "astro" / "image.fits")
    (volume / "astro" / "broken.fits").write_bytes(b"SIMPLE  = garbage")
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        db.add(Volume(name="Archive", host_path=str(volume), allowed_groups=[]))
    engine.dispose()
    first = run(home, "assets", "harvest", "Archive").stdout
    assert "13 files: 13 new" in first and "1 with errors" in first and "broken.fits" in first
    again = run(home, "assets", "harvest", "Archive").stdout
    assert "0 new, 0 changed, 13 unchanged, 0 removed" in again
    (volume / "astro" / "broken.fits").unlink()
    assert "1 removed" in run(home, "assets", "harvest", "Archive").stdout
    assert json.loads(run(home, "assets", "stats").stdout)["assets"] == 3012
    token = run(home, "admin", "create-token", "root").stdout.strip()
    with live_server(home) as url:
        env = {"DATALABS_API_URL": url, "DATALABS_TOKEN": token, "DATALABS_CREDENTIALS": str(home / "none")}
        found = json.loads(
            run(home, "assets", "search", "abmf", "-f", "collection=Archive", "--json", env=env).stdout
        )
        assert found["total"] == 5  # ABMF observation files of the harvested volume, nav included
        table = run(home, "assets", "search", "-f", "station=KIRU00SWE", "--limit", "3", env=env).stdout
        assert "KIRU00SWE" in table and "1 - 3 of" in table
