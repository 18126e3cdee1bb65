"""What the app store pages show: app cards, version states, the metadata form (DESIGN §7) and the
translation between that form and the metadata overrides the builder takes.

Pure presentation over `db.models.App`; who may see or change an app stays in `builder.service`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from datalabs.builder.meta import MANDATORY, RECOMMENDED
from datalabs.db.models import App, AppEvent, AppVersion

STATE_LABELS = {
    "private": "Private",
    "submitted": "Waiting for review",
    "published": "Published",
    "rejected": "Changes requested",
    "queued": "Queued",
    "building": "Building",
    "built": "Built",
    "failed": "Build failed",
}
MIN_FAILING = 12  # shorter log lines (blank, "+") would match any error by chance
STATE_TONES = {"published": "ok", "built": "ok", "failed": "error", "rejected": "warn", "submitted": "info"}


@dataclass(frozen=True)
class Field:
    key: str  # dotted metadata key, also the form field's name
    label: str
    help: str = ""
    multiline: bool = False
    is_list: bool = False  # comma-separated in the form, a YAML list in the metadata


FIELDS = {
    f.key: f
    for f in (
        Field("title", "Title", "The name people see in the catalogue."),
        Field("abstract", "Abstract", "One or two sentences on what it is for.", multiline=True),
        Field(
            "distribution.license",
            "Licence",
            "Required to publish, e.g. MIT, BSD-3-Clause, CC-BY-4.0.",
        ),
        Field("description", "Description", "What it contains and how to use it.", multiline=True),
        Field("creator.name", "Creator"),
        Field("contactPoint.email", "Contact e-mail"),
        Field("keywords", "Keywords", "Separated by commas.", is_list=True),
        Field("mission", "Mission", "Separated by commas.", is_list=True),
        Field("domain", "Domain", "Such as Astronomy or Heliophysics."),
        Field("alternateName", "Alternative name"),
        Field("contactPoint.organisation-name", "Organisation"),
        Field("instrument", "Instrument", "Separated by commas.", is_list=True),
        Field("requiredDataset", "Required datasets", "Separated by commas.", is_list=True),
        Field("citation", "Citation"),
        Field("thumbnailUrl", "Thumbnail URL", "An image shown on the catalogue card."),
    )
}
OPTIONAL = tuple(k for k in FIELDS if k not in MANDATORY and k not in RECOMMENDED)
SECTIONS = (
    ("Mandatory", MANDATORY),
    ("Recommended", RECOMMENDED),
    ("Optional", OPTIONAL),
)


def field_id(key: str) -> str:
    return "meta-" + key.replace(".", "-")


def _lookup(data: dict[str, Any], key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def form_values(data: dict[str, Any]) -> dict[str, str]:
    """The metadata form's text values from a `datalab-meta.yml` (or version metadata)."""
    values = {}
    for key, f in FIELDS.items():
        value = _lookup(data, key)
        if f.is_list:
            value = ", ".join(str(v) for v in value) if isinstance(value, list) else (value or "")
        values[key] = "" if value is None else str(value)
    return values


def overrides(form: dict[str, str], data: dict[str, Any]) -> dict[str, Any]:
    """Metadata overrides for the builder from the form. Every shown field is sent (an emptied field
    empties the key); keys in nested maps keep the file's other keys (the builder replaces top-level
    keys whole)."""
    out: dict[str, Any] = {}
    for key, f in FIELDS.items():
        text = form.get(key, "").strip()
        value: Any = [v.strip() for v in text.split(",") if v.strip()] if f.is_list else text
        top, _, sub = key.partition(".")
        if not sub:
            out[top] = value
            continue
        if top not in out:
            original = data.get(top)
            out[top] = copy.deepcopy(original) if isinstance(original, dict) else {}
        out[top][sub] = value
    return out


def sections(values: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "title": title,
            "fields": [
                {"field": FIELDS[k], "id": field_id(k), "value": values.get(k, "")}
                for k in keys
                if k in FIELDS
            ],
        }
        for title, keys in SECTIONS
    ]


def state(value: str) -> dict[str, str]:
    return {"value": value, "label": STATE_LABELS.get(value, value), "tone": STATE_TONES.get(value, "")}


def newest_meta(versions: list[AppVersion]) -> dict[str, Any]:
    """The metadata of the newest of `versions` (those the viewer may see, see `shown_versions`)."""
    return versions[-1].meta if versions else {}


def card(app: App, shown: list[AppVersion], running: bool = False, insider: bool = True) -> dict[str, Any]:
    """An app's card from the versions the viewer may see. `insider` (author, whom it is shared with,
    moderators) see the app's review state; everyone else sees a published app, nothing of the review
    of a version they cannot see."""
    meta = newest_meta(shown)
    newest = shown[-1] if shown else None
    published = any(v.published for v in app.versions)
    return {
        "name": app.name,
        "title": meta.get("title") or app.name,
        "abstract": meta.get("abstract", ""),
        "keywords": list(meta.get("keywords") or [])[:6],
        "owner": app.owner.name,
        "state": state(app.state if insider else "published"),
        # A published app may have another version under review: both are worth a badge.
        "also_published": insider and published and app.state == "submitted",
        "published": published,
        "featured": app.featured,
        "running": running,
        "version": newest.version if newest else "",
        "version_state": state(newest.state) if newest else None,
        "in_catalogue": any(v.state == "built" for v in shown),
    }


def matches(shown: list[AppVersion], name: str, words: list[str]) -> bool:
    meta = newest_meta(shown)
    text = " ".join(
        [name, str(meta.get("title", "")), str(meta.get("abstract", ""))]
        + [str(k) for k in meta.get("keywords") or []]
    ).lower()
    return all(w in text for w in words)


REVIEW_KINDS = ("submitted", "approved", "rejected", "unpublished", "withdrawn")


def last_reviews(events: list[AppEvent]) -> dict[str, str]:
    """Per version, the latest review step in the history (events newest first)."""
    last: dict[str, str] = {}
    for e in events:
        if e.version and e.kind in REVIEW_KINDS:
            last.setdefault(e.version, e.kind)
    return last


def version_row(app: App, v: AppVersion, last_review: str = "") -> dict[str, Any]:
    under_review = app.state == "submitted" and app.submitted_version == v.version
    return {
        "version": v.version,
        "state": state(v.state),
        "error": v.error,
        "source": f"{v.source_kind}: {v.source_ref}" if v.source_ref else v.source_kind,
        "created_by": v.created_by,
        "created_at": v.created_at,
        "ended_at": v.ended_at,
        "cached": v.cached,
        "license": (v.meta.get("distribution") or {}).get("license", ""),
        "submitted": under_review,
        "published": v.published,
        "rejected": not (under_review or v.published) and last_review == "rejected",
    }


def is_failing(line: str, error: str) -> bool:
    """Whether a build log line is (part of) the builder's error: the error may join several lines of the
    tool's output (uv's "error: ..." and "cause: ..."), and the BUILD FAILED line repeats it whole."""
    text = line.strip()
    return bool(error) and (error in line or (len(text) >= MIN_FAILING and text in error))


def log_lines(text: str, error: str) -> list[dict[str, Any]]:
    """The build log's lines, those of the error marked so the page can highlight them."""
    error = error.strip()
    return [{"text": line, "failing": is_failing(line, error)} for line in text.splitlines()]
