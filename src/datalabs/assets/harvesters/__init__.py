"""Harvesters, found through the `datalabs.harvesters` entry points (core ones register there too)."""

from __future__ import annotations

from pathlib import Path

from datalabs import plugins
from datalabs.assets.base import AssetRecord, Harvester, HarvestError


def available() -> list[Harvester]:
    """One instance of every registered harvester, most specific (highest priority) first."""
    found = [cls() for cls in plugins.load("datalabs.harvesters").values()]
    return sorted(found, key=lambda h: (-h.priority, h.name))


def harvest(path: Path, collection: str, relpath: str, harvesters: list[Harvester]) -> AssetRecord:
    """The record of the first harvester that matches; `HarvestError` if it cannot read the file."""
    for harvester in harvesters:
        if harvester.matches(path):
            return harvester.harvest(path, collection, relpath)
    raise HarvestError(path, "no harvester matches this file")
