"""Triggers: rules that start runs of a pipeline on an event. One entry point per user action: create, list,
get, pause, resume, delete, test ("fire now with this input"); events fire through trigger_events.fire.

Kinds and their `config`:
- new_data: `watch` (a folder the owner may read: `me/incoming`, `team:astro/in`, `volume:Demo/in`) and/or
  `search` (a saved asset search: the explorer's query parameters, e.g. {"collection": "Demo", "q": "x"});
  `input` (the pipeline input that receives the file, or the list of files in batch mode); `mode`
  per_file | batch; `window` (seconds a batch gathers files); `pattern` (a glob on the file name).
- webhook: no config; a secret is made at creation, shown once (trigger_hooks.py says how to sign).
- run_finished: `after` (the pipeline whose runs' ends fire it), `on` (["succeeded"], or with "failed"),
  `map` ({input of this pipeline: output of `after`}).

`inputs` are the fixed inputs of every run; the event's (file, webhook body, mapped outputs) go over them.
Triggers are their owner's: others (admins aside) do not see them; runs are queued as the owner.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Pipeline, PipelineTrigger
from datalabs.db.types import utcnow
from datalabs.errors import Invalid, NotFound
from datalabs.pipelines import inputs as run_inputs
from datalabs.pipelines import owned, registry, runs, trigger_assets, trigger_events
from datalabs.pipelines.documents import describe
from datalabs.workspaces import paths

KINDS = ("new_data", "webhook", "run_finished")
MODES = ("per_file", "batch")
SEARCH_KEYS = {"collection", "q", "bbox", "datetime", "sort", "facets"}


def create(
    db: Session,
    settings: Settings,
    principal: Principal,
    pipeline: Pipeline,
    *,
    kind: str,
    config: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    version: str | None = None,
    name: str = "",
    output_space: str = "me",
) -> tuple[PipelineTrigger, str]:
    """The new trigger and, for a webhook, its secret (shown this once)."""
    if kind not in KINDS:
        raise Invalid(f"kind must be one of: {', '.join(KINDS)}", code="bad_trigger_kind")
    row = registry.version_of(pipeline, version)
    params = {p.id: p for p in describe(row.packed).inputs}
    inputs = inputs or {}
    if not isinstance(inputs, dict):
        raise Invalid("inputs must be an object: {input name: value}", code="bad_inputs")
    if unknown := sorted(set(inputs) - set(params)):
        raise Invalid(
            f"inputs: {', '.join(unknown)} not taken by '{pipeline.name}' (it takes: {', '.join(params)})",
            code="unknown_input",
        )
    normalised = run_inputs.normalise(list(params.values()), inputs)
    run_inputs.check_access(db, settings, principal, normalised)  # files of the template: the owner's
    runs.check_output_space(db, settings, principal, output_space)
    config = _check_config(db, settings, principal, kind, config or {}, params)
    trigger = PipelineTrigger(
        pipeline_id=pipeline.id,
        version=version or "",
        owner_id=principal.user.id,
        kind=kind,
        name=(name or kind.replace("_", " "))[:100],
        config=config,
        inputs=inputs,
        output_space=output_space,
        secret=secrets.token_urlsafe(32) if kind == "webhook" else "",
    )
    db.add(trigger)
    db.flush()
    return trigger, trigger.secret


def _check_config(
    db: Session, settings: Settings, principal: Principal, kind: str, config: Any, params: dict
) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise Invalid("config must be an object", code="bad_trigger_config")
    allowed = {
        "new_data": {"watch", "search", "input", "mode", "window", "pattern"},
        "webhook": set(),
        "run_finished": {"after", "on", "map"},
    }[kind]
    if unknown := sorted(set(config) - allowed):
        raise Invalid(
            f"config: unknown field(s) {', '.join(unknown)} for a {kind} trigger"
            + (f" (it takes: {', '.join(sorted(allowed))})" if allowed else " (it takes none)"),
            code="bad_trigger_config",
        )
    if kind == "new_data":
        return _check_new_data(db, settings, principal, config, params)
    if kind == "run_finished":
        return _check_run_finished(db, principal, config, params)
    return {}


def _check_new_data(db, settings, principal, config: dict, params: dict) -> dict[str, Any]:
    watch, search = config.get("watch") or "", config.get("search") or {}
    if not watch and not search:
        raise Invalid("config: a new_data trigger watches a folder (watch) or an asset search (search)",
                      code="bad_trigger_config")  # fmt: skip
    if watch:
        if not isinstance(watch, str) or len(watch) > 1024:
            raise Invalid("config.watch: a folder reference such as me/incoming", code="bad_trigger_config")
        watch = watch.strip().rstrip("/")
        space, _, rest = watch.partition("/")  # no rest: a whole space (me, team:astro, volume:Demo)
        place = run_inputs.place_of(db, settings, principal, f"{space}/_")  # the owner's to read
        os.close(paths.open_dir(place.root, paths.parts_of(rest)))  # no `..`, no link on the way
    if search and (not isinstance(search, dict) or set(search) - SEARCH_KEYS):
        raise Invalid(
            f"config.search: an object with {', '.join(sorted(SEARCH_KEYS))}", code="bad_trigger_config"
        )
    if search:
        trigger_assets.check(search)
    mode = config.get("mode", "per_file")
    if mode not in MODES:
        raise Invalid("config.mode: per_file or batch", code="bad_trigger_config")
    window = config.get("window", 60)
    if not isinstance(window, int | float) or isinstance(window, bool) or not 1 <= window <= 86400:
        raise Invalid("config.window: seconds, 1 to 86400", code="bad_trigger_config")
    name = config.get("input")
    files = [p for p, param in params.items() if "File" in str(param.type)]
    if name is None and len(files) == 1:
        name = files[0]
    if name not in params:
        raise Invalid(
            f"config.input: the input that receives the new file(s), one of: {', '.join(files) or '(none)'}",
            code="bad_trigger_config",
        )
    pattern = config.get("pattern", "")
    if not isinstance(pattern, str) or len(pattern) > 200:
        raise Invalid("config.pattern: a file name glob such as *.rnx", code="bad_trigger_config")
    fnmatch.translate(pattern or "*")
    return {
        "watch": watch,
        "search": search,
        "input": name,
        "mode": mode,
        "window": window,
        "pattern": pattern,
    }


def _check_run_finished(db, principal, config: dict, params: dict) -> dict[str, Any]:
    after = config.get("after")
    if not isinstance(after, str) or not after:
        raise Invalid("config.after: the pipeline whose runs' ends fire this one", code="bad_trigger_config")
    registry.get_visible(db, principal, after)
    on = config.get("on", ["succeeded"])
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not on or set(on) - {"succeeded", "failed"}:
        raise Invalid("config.on: a list of 'succeeded' and/or 'failed'", code="bad_trigger_config")
    mapping = config.get("map", {})
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise Invalid("config.map: {input of this pipeline: output of the other}", code="bad_trigger_config")
    if unknown := sorted(set(mapping) - set(params)):
        raise Invalid(
            f"config.map: {', '.join(unknown)} is not an input of this pipeline", code="bad_trigger_config"
        )
    return {"after": after, "on": sorted(set(on)), "map": mapping}


def list_for(db: Session, principal: Principal, pipeline: Pipeline) -> list[PipelineTrigger]:
    return owned.listed(db, principal, PipelineTrigger, pipeline)


def get(db: Session, principal: Principal, trigger_id: int) -> PipelineTrigger:
    return owned.fetch(db, principal, PipelineTrigger, trigger_id, "trigger")


def pause(db: Session, principal: Principal, trigger_id: int) -> PipelineTrigger:
    trigger = get(db, principal, trigger_id)
    trigger.paused = True
    db.flush()
    return trigger


def resume(db: Session, principal: Principal, trigger_id: int) -> PipelineTrigger:
    """Paused triggers miss what happened meanwhile: only files and assets newer than the resume fire."""
    trigger = get(db, principal, trigger_id)
    if trigger.paused:
        trigger.paused, trigger.armed_at = False, utcnow()
        db.flush()
    return trigger


def delete(db: Session, principal: Principal, trigger_id: int) -> None:
    db.delete(get(db, principal, trigger_id))
    db.flush()


def test(
    sessions: sessionmaker[Session],
    settings: Settings,
    principal: Principal,
    trigger_id: int,
    inputs: dict[str, Any] | None = None,
    file: str = "",
) -> trigger_events.Fired:
    """Fire now, as the event would: with `inputs` (over the trigger's), or for a new_data trigger with
    `file` (a reference, given to its input). The inputs are checked first (refused with 422: nothing
    recorded); a paused trigger fires too (testing it is how one checks it before resuming)."""
    with sessions() as db:
        trigger = get(db, principal, trigger_id)
        given = dict(inputs or {})
        if file:
            if trigger.kind != "new_data":
                raise Invalid("file: only a new_data trigger takes a file", code="bad_trigger_test")
            name = trigger.config["input"]
            given[name] = [file] if trigger.config.get("mode") == "batch" else file
        paused = trigger.paused
    key = f"test:{secrets.token_hex(8)}"
    triggered = {"test": principal.name}
    if paused:  # fire_in ignores paused triggers: a test does not
        return _test_paused(sessions, settings, trigger_id, key, given, triggered)
    fired = trigger_events.fire(
        sessions, settings, trigger_id, key, detail=f"test by {principal.name}", inputs=given,
        triggered=triggered, strict=True,
    )  # fmt: skip
    if fired is None:
        raise NotFound(f"no trigger {trigger_id} of yours", code="trigger_not_found")
    return fired


def _test_paused(sessions, settings, trigger_id, key, given, triggered) -> trigger_events.Fired:
    from datalabs.db.engine import transaction

    with transaction(sessions) as db:
        trigger = db.get(PipelineTrigger, trigger_id)
        trigger.paused = False
        fired = trigger_events.fire_in(
            db, settings, trigger_id, key, detail="test (paused trigger)", inputs=given,
            triggered=triggered, strict=True,
        )  # fmt: skip
        trigger.paused = True
    return fired
