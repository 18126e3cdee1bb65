"""A small index behind a real app: two volumes (one open, one for group `astro`) and their assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datalabs.assets.base import AssetRecord
from datalabs.db.engine import transaction
from datalabs.db.models import Volume

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STATIONS = {"ABMF00GLP": (-61.528, 16.262), "KIRU00SWE": (20.968, 67.857), "ZIM200CHE": (7.465, 46.877)}


def records() -> list[AssetRecord]:
    out = []
    for day in range(10):
        for station, (lon, lat) in STATIONS.items():
            for system, name in (("G", "GPS"), ("R", "GLONASS")):
                out.append(
                    AssetRecord(
                        collection="GsscOpen",
                        path=f"obs/2024/{day + 1:03d}/{station}_R_2024{day + 1:03d}0000_01D_30S_{system}O"
                        ".crx.gz",
                        size=1000 + day,
                        start=T0 + timedelta(days=day),
                        end=T0 + timedelta(days=day + 1),
                        facets={
                            "station": (station,),
                            "constellation": (name,),
                            "sampling_rate": ("30S",),
                            "domain": ("GNSS",),
                        },
                        bbox=(lon, lat, lon, lat),
                        media_type="application/x-rinex",
                    )
                )
    out.append(
        AssetRecord(
            collection="AstroSecret",
            path="jwst/secret_nircam.fits",
            start=T0,
            facets={"mission": ("JWST",), "domain": ("Astronomy",)},
            bbox=(14.77, -72.17, 14.77, -72.17),
        )
    )
    out.append(AssetRecord(collection="Unregistered", path="stray.txt", start=T0))
    return out


def seed(app, tmp_path) -> None:
    """Register the volumes and ingest the records into the app's own index."""
    for name in ("GsscOpen", "AstroSecret"):
        (tmp_path / name).mkdir(exist_ok=True)
    with transaction(app.state.sessions) as db:
        db.add(Volume(name="GsscOpen", host_path=str(tmp_path / "GsscOpen"), allowed_groups=[]))
        db.add(Volume(name="AstroSecret", host_path=str(tmp_path / "AstroSecret"), allowed_groups=["astro"]))
    app.state.assets.index.ingest(records())
