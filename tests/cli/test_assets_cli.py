"""`datalabs assets`: synth + ingest a listing, harvest a registered volume (incremental), then search
through a live server with the CLI."""

from __future__ import annotations

import json
import time

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


def test_open_an_asset_in_a_new_then_a_running_lab(tmp_path):
    from datalabs.assets.base import AssetRecord
    from datalabs.assets.engine import BitmapIndex
    from datalabs.assets.service import index_dir

    home = tmp_path / "home"
    run(home, "admin", "create-user", "root", "--password", "long-enough-pw", "--admin")
    token = run(home, "admin", "create-token", "root").stdout.strip()
    volume = tmp_path / "Archive"
    (volume / "gnss").mkdir(parents=True)
    (volume / "gnss" / "kiru0010.24o").write_text("RINEX")
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        db.add(Volume(name="Archive", host_path=str(volume), allowed_groups=[]))
    engine.dispose()
    BitmapIndex(index_dir(Settings(home=home))).ingest(
        [AssetRecord(collection="Archive", path="gnss/kiru0010.24o")]
    )
    (tmp_path / "defs" / "fake").mkdir(parents=True)
    (tmp_path / "defs" / "fake" / "datalab-meta.yml").write_text(
        'title: Fake\nversion: "1"\nruntime: {kind: desktop, desktop: {command: [fake-lab]}}\n'
        'associatedMedia: [{encodingFormat: application/octet-stream, command: [fake-lab, "{path}"]}]\n'
    )  # a desktop app that opens files of an unknown type (the asset has none)
    server_env = {
        "DATALABS_LABS__BACKEND": "datalabs.runtimes.testing:FakeRuntime",
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(tmp_path / "defs")]),
        "DATALABS_CATALOGUE__BUILTIN": "false",
    }
    with live_server(home, server_env) as url:
        env = {"DATALABS_API_URL": url, "DATALABS_TOKEN": token, "DATALABS_CREDENTIALS": str(home / "none")}
        launched = json.loads(
            run(
                home, "assets", "open", "Archive:gnss/kiru0010.24o", "--datalab", "fake", "--json", env=env
            ).stdout
        )
        assert launched["launched"] and launched["path"] == "/media/data/Archive/gnss/kiru0010.24o"
        lab = launched["lab_id"]
        for _ in range(100):  # the fake lab starts at once, but in the background
            labs = json.loads(run(home, "labs", "ls", "--json", env=env).stdout)
            if [x["state"] for x in labs if x["id"] == lab] == ["running"]:
                break
            time.sleep(0.1)
        out = run(home, "assets", "open", "Archive:gnss/kiru0010.24o", "--lab", lab, env=env).stdout
        assert f"lab {lab} (running): the file is on its data volume" in out
        assert f"open: {url}/datalabs/{lab}/" in out
        refused = run(
            home, "assets", "open", "Archive:gnss/kiru0010.24o", "--lab", "nope", env=env, check=False
        )
        assert refused.returncode == 1 and "no lab 'nope'" in refused.stderr
        both = run(
            home, "assets", "open", "Archive:x", "--lab", lab, "--datalab", "fake", env=env, check=False
        )
        assert both.returncode == 1 and "either --lab" in both.stderr
        run(home, "labs", "rm", lab, env=env)
