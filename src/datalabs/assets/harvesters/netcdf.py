"""NetCDF (classic and NetCDF-4/HDF5) files following the CF conventions (netCDF4): title, variables,
time coverage and bounding box, from the ACDD attributes when present, else from coordinate variables."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import netCDF4
import numpy as np

from datalabs.assets.base import AssetRecord, Harvester, HarvestError
from datalabs.assets.harvesters.fits import _date
from datalabs.assets.harvesters.generic import file_record

_SUFFIX = re.compile(r"\.(nc|nc4|netcdf|cdf)$", re.IGNORECASE)
_LAT = ("lat", "latitude", "nav_lat")
_LON = ("lon", "longitude", "nav_lon")


def _attr(ds, *names: str):
    for name in names:
        if name in ds.ncattrs():
            return ds.getncattr(name)
    return None


def _coordinate(ds, names: tuple[str, ...], standard: str):
    for var in ds.variables.values():
        if var.name.lower() in names or getattr(var, "standard_name", "") == standard:
            return var
    return None


def _range(var) -> tuple[float, float] | None:
    if var is None or var.size == 0:
        return None
    values = np.ma.masked_invalid(np.ma.asarray(var[:], dtype=float))
    return (float(values.min()), float(values.max())) if values.count() else None


def _times(ds) -> tuple[datetime | None, datetime | None]:
    start = _date(_attr(ds, "time_coverage_start"))
    end = _date(_attr(ds, "time_coverage_end"))
    if start:
        return start, end
    var = _coordinate(ds, ("time",), "time")
    span = _range(var)
    if not span or not getattr(var, "units", ""):
        return None, None
    calendar = getattr(var, "calendar", "standard")
    first, last = netCDF4.num2date(list(span), var.units, calendar, only_use_cftime_datetimes=False)
    return _utc(first), _utc(last)


def _utc(value) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class NetcdfHarvester(Harvester):
    name = "netcdf"
    priority = 50

    def matches(self, path: Path) -> bool:
        return bool(_SUFFIX.search(path.name))

    def harvest(self, path: Path, collection: str, relpath: str) -> AssetRecord:
        record = file_record(path, collection, relpath)
        try:
            with netCDF4.Dataset(path, "r") as ds:
                self._fill(record, ds)
        except HarvestError:
            raise
        except Exception as e:  # netCDF4 raises OSError/RuntimeError for damaged files
            raise HarvestError(path, f"not a readable NetCDF file: {e}") from e
        return record

    def _fill(self, record: AssetRecord, ds) -> None:
        names = [v for v in ds.variables if v not in ds.dimensions]
        standard = sorted({getattr(ds.variables[v], "standard_name", "") for v in names} - {""})
        record.facets = {
            "domain": (str(_attr(ds, "domain", "science_domain") or "Earth science"),),
            "resource_class": ("data",),
            "resource_type": (str(_attr(ds, "featureType", "cdm_data_type") or "grid"),),
            "file_format": (ds.data_model.replace("_", " ").title().replace("Netcdf", "NetCDF"),),
            "tags": tuple(standard[:20]),
        }
        for facet, attrs in (
            ("mission", ("platform", "mission")),
            ("instrument", ("instrument",)),
            ("dataset", ("product_name", "id")),
            ("source", ("institution",)),
        ):
            if value := _attr(ds, *attrs):
                record.facets[facet] = (str(value),)
        record.title = str(_attr(ds, "title") or "")
        record.start, record.end = _times(ds)
        lat = (_attr(ds, "geospatial_lat_min"), _attr(ds, "geospatial_lat_max"))
        lon = (_attr(ds, "geospatial_lon_min"), _attr(ds, "geospatial_lon_max"))
        if None in lat or None in lon:
            lat = _range(_coordinate(ds, _LAT, "latitude")) or (None, None)
            lon = _range(_coordinate(ds, _LON, "longitude")) or (None, None)
        if None not in lat and None not in lon:
            west, east = (((x + 180) % 360) - 180 if x > 180 else x for x in lon)
            record.bbox = (float(min(west, east)), float(lat[0]), float(max(west, east)), float(lat[1]))
        record.media_type = "application/x-netcdf"
        record.properties = {"variables": names[:100], "conventions": str(_attr(ds, "Conventions") or "")}
