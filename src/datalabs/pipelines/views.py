"""Pipelines and runs as pages show them: catalogue cards and their filters (system / mine / shared with
me, keyword), run summaries with their output files. Plain data, no HTML: the templates render it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from datalabs.accounts.principal import Principal
from datalabs.db.models import Pipeline, PipelineRun
from datalabs.pipelines import queue
from datalabs.pipelines.documents import describe

SOURCES = {"": "All pipelines", "system": "System", "mine": "Mine", "shared": "Shared with me"}
STATE_LABELS = {
    queue.QUEUED: "Queued",
    queue.RUNNING: "Running",
    queue.SUCCEEDED: "Succeeded",
    queue.FAILED: "Failed",
    queue.CANCELLED: "Cancelled",
}


def source_of(pipeline: Pipeline, principal: Principal) -> str:
    if pipeline.system:
        return "system"
    return "mine" if pipeline.owner_id == principal.user.id else "shared"


def filter_source(pipelines: list[Pipeline], principal: Principal, source: str) -> list[Pipeline]:
    """ "shared" is every user pipeline of someone else the user may see (allowed by name or group, or
    every one for an admin)."""
    return [p for p in pipelines if not source or source_of(p, principal) == source]


def keyword_counts(pipelines: list[Pipeline]) -> list[tuple[str, int]]:
    counts = Counter(k for p in pipelines for k in p.keywords)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].lower()))


def card(pipeline: Pipeline, principal: Principal) -> dict[str, Any]:
    latest = pipeline.versions[-1]
    return {
        "name": pipeline.name,
        "title": pipeline.title or pipeline.name,
        "description": pipeline.description,
        "keywords": pipeline.keywords,
        "version": latest.version,
        "engine": pipeline.engine,
        "source": source_of(pipeline, principal),
        "owner": pipeline.owner.name if pipeline.owner else "",
    }


def split_ref(ref: str) -> tuple[str, str]:
    """`me/pipelines/x/<run>/out.txt` -> ("me", "pipelines/x/<run>/out.txt")."""
    space, _, path = ref.partition("/")
    return space, path


def output_files(value: Any) -> list[dict[str, str]]:
    """Every File/Directory in a CWL output object, as (output name, class, workspace reference)."""
    found: list[dict[str, str]] = []

    def walk(name: str, v: Any) -> None:
        if isinstance(v, dict) and v.get("class") in ("File", "Directory") and v.get("location"):
            found.append({"output": name, "class": v["class"], "ref": v["location"], "size": v.get("size")})
        elif isinstance(v, dict):
            for item in v.values():
                walk(name, item)
        elif isinstance(v, list):
            for item in v:
                walk(name, item)

    for name, v in (value or {}).items():
        walk(name, v)
    return found


def run_summary(run: PipelineRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": run.pipeline.name,
        "pipeline_title": run.pipeline.title or run.pipeline.name,
        "version": run.version.version,
        "owner": run.owner.name,
        "engine": run.engine,
        "cluster": run.cluster,
        "state": run.state,
        "state_label": STATE_LABELS.get(run.state, run.state.capitalize()),
        "active": run.state not in queue.FINAL,
        "reason": run.reason,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "cancel_requested": run.cancel_requested,
        "schedule_id": run.schedule_id,
        "attempts": run.attempts,
        "output_space": run.output_space,
        "output_path": run.output_path,
    }


def parameters(run: PipelineRun) -> list[dict[str, str]]:
    """The run's inputs next to the pipeline version's declared inputs (defaults shown as such)."""
    declared = describe(run.version.packed).inputs
    rows = []
    for p in declared:
        given = p.id in run.inputs and run.inputs[p.id] is not None
        value = run.inputs[p.id] if given else p.default
        rows.append(
            {
                "id": p.id,
                "label": p.label,
                "type": p.as_dict()["type_text"],
                "value": _text(value),
                "from_default": not given and p.has_default,
            }
        )
    return rows


def _text(value: Any) -> str:
    if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
        return str(value.get("location") or value.get("path") or "")
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value)
