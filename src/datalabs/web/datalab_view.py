"""Turns one stored datalab version into what the detail page shows: every field of datalab-meta.yml,
the runtime, and anything unknown in a generic "Other" table (nothing a definition says is hidden)."""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from datalabs.catalogue.entries import Entry, GpuSources, availability, thumbnail_url
from datalabs.catalogue.schema import DatalabMeta

# Keys shown in their own place on the page; everything else (and unknown sub-keys) goes to "Other".
_SHOWN = {
    "name",
    "title",
    "alternateName",
    "abstract",
    "description",
    "version",
    "creator",
    "contactPoint",
    "mission",
    "instrument",
    "keywords",
    "thumbnailUrl",
    "distribution",
    "citation",
    "requiredDataset",
    "domain",
    "datePublished",
    "allowed_groups",
    "runtime",
}
_SHOWN_SUB = {
    "creator": {"name"},
    "contactPoint": {"email", "organisation-name"},
    "distribution": {"license"},
    "runtime": {
        "kind",
        "command",
        "desktop",
        "environment",
        "requirements",
        "requires",
        "python_packages",
        "resources",
        "allowed_groups",
    },
}


def as_text(value: Any) -> str:
    """A readable, plain-text form of any YAML value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True).strip()


def other_fields(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted key, text) for every key the page does not show elsewhere."""
    rows = []
    for key, value in raw.items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        if key not in _SHOWN:
            rows.append((key, as_text(value)))
        elif key in _SHOWN_SUB and isinstance(value, dict):
            rows += [(f"{key}.{k}", as_text(v)) for k, v in value.items() if k not in _SHOWN_SUB[key]]
    if isinstance(desktop := (raw.get("runtime") or {}).get("desktop"), dict):
        rows += [(f"runtime.desktop.{k}", as_text(v)) for k, v in desktop.items() if k != "command"]
    return sorted(rows)


def describe(entry: Entry, raw: dict[str, Any], shown: str, gpu_sources: GpuSources) -> dict[str, Any]:
    meta = DatalabMeta.model_validate(raw)
    rt = meta.runtime
    available, reason = availability(meta, gpu_sources)
    latest = entry.versions[0]
    res = rt.resources
    return {
        "name": entry.name,
        "title": meta.title,
        "alternate_name": meta.alternateName,
        "abstract": meta.abstract,
        "description": meta.description,
        "version": meta.version,
        "versions": entry.versions,
        "latest": latest,
        "is_latest": shown == latest,
        "thumbnail": thumbnail_url(entry.name, raw, None if shown == latest else shown),
        "creator": meta.creator.name,
        "email": meta.contactPoint.email,
        "organisation": meta.contactPoint.organisation_name,
        "mission": meta.mission,
        "instrument": meta.instrument,
        "keywords": meta.keywords,
        "license": meta.distribution.license,
        "citation": meta.citation,
        "required_datasets": meta.requiredDataset,
        "domain": meta.domain,
        "date_published": meta.datePublished,
        "kind": rt.kind,
        # A desktop with several apps has no single command: its menu's apps stand in for it.
        "command": shlex.join(rt.desktop.command if rt.desktop else rt.command)
        or "; ".join(shlex.join(app.command) for app in rt.desktop.apps),
        "environment": rt.environment,
        "requirements": rt.requirements,
        "requires": rt.requires,
        "python_packages": rt.python_packages,
        "resources": [
            ("Default", res.default.cpu, res.default.memory, res.default.gpu),
            ("Maximum", res.maximum.cpu, res.maximum.memory, res.maximum.gpu),
        ],
        "groups": meta.groups,
        "available": available,
        "unavailable_reason": reason,
        "other": other_fields(raw),
    }
