"""Event windows kept by the event recorder (issue 18): NetCDF files `<STATION>_<time>Z_event.nc` whose
`product` attribute is `station-event`. Read as NetCDF, then dated by the event (not the window's start),
so the explorer's time filter and sort find an event by when it happened; the peak and the window go
into the properties. A file of that name without the attribute is harvested as plain NetCDF."""

from __future__ import annotations

import re
from pathlib import Path

from datalabs.assets.harvesters.fits import _date
from datalabs.assets.harvesters.netcdf import NetcdfHarvester, _attr

_NAME = re.compile(r"_event\.nc$")
PRODUCT = "station-event"


class StationEventHarvester(NetcdfHarvester):
    name = "station-event"
    priority = 60  # before the NetCDF harvester, which reads the same files

    def matches(self, path: Path) -> bool:
        return bool(_NAME.search(path.name))

    def _fill(self, record, ds) -> None:
        super()._fill(record, ds)
        if _attr(ds, "product") != PRODUCT:
            return
        event = _date(str(_attr(ds, "event_time") or ""))
        station = str(_attr(ds, "station") or "")
        window = (record.start, record.end)
        if event is not None:
            record.start = record.end = event
        record.facets["resource_type"] = ("event",)
        record.facets["dataset"] = (PRODUCT,)
        if station:
            record.facets["station"] = (station,)
        peak = _attr(ds, "peak_power_dbm")
        record.properties.update(
            product=PRODUCT,
            event_time=event.isoformat() if event else None,
            peak_power_dbm=float(peak) if peak is not None else None,
            peak_z=float(_attr(ds, "peak_z") or 0.0),
            window_start=window[0].isoformat() if window[0] else None,
            window_end=window[1].isoformat() if window[1] else None,
            source_chunks=str(_attr(ds, "source_chunks") or ""),
        )
