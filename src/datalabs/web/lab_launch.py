"""Launching a datalab from the catalogue: the launch page (defaults, "Advanced configuration") and its POST,
which records the lab through `labs.service.create` exactly as the API does, then follows its start."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.catalogue.entries import Entry
from datalabs.catalogue.schema import DatalabMeta, parse_memory
from datalabs.catalogue.search import Catalogue
from datalabs.clusters import service as clusters
from datalabs.deps import get_db
from datalabs.errors import DatalabsError, TooManyRequests
from datalabs.labs import service
from datalabs.labs.team_labs import MODEL_DATALAB
from datalabs.volumes import service as volume_service
from datalabs.web import forms
from datalabs.web.lab_view import number
from datalabs.web.render import page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user
from datalabs.workspaces import service as workspace_service

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
LAUNCHED = "launched"  # the flash kind of the redirect after a launch
_FIELDS = ("name", "version", "cpu", "memory", "gpu")
VOLUME_ERRORS = {
    "unknown_volume",
    "volume_clash",
    "volume_offline",
    "bad_custom_volume",
    "bad_path",
    "symlink",
}


def _memory_choices(default: str, maximum: str) -> list[str]:
    """Suggestions for the memory field: 512M, 1G, 2G, ... up to the maximum, plus default and maximum."""
    most = parse_memory(maximum)
    sizes = ["512M"] + [f"{2**i}G" for i in range(0, 11)]
    choices = [s for s in sizes if parse_memory(s) <= most] + [default, maximum]
    return sorted(set(choices), key=parse_memory)


def _limits(meta: DatalabMeta) -> dict[str, Any]:
    res = meta.runtime.resources
    d, m = res.default, res.maximum
    halves = all(math.isclose(v * 2, round(v * 2)) for v in (d.cpu, m.cpu))
    return {
        "cpu_default": number(d.cpu),
        "cpu_max": number(m.cpu),
        "cpu_min": number(min(0.5, d.cpu)),
        # Browsers only accept multiples of `step` counted from `min`; odd limits get a free field.
        "cpu_step": "0.5" if halves and d.cpu >= 0.5 else "any",
        "memory_default": d.memory,
        "memory_max": m.memory,
        "memory_max_text": service.memory_text(m.memory_bytes),
        "memory_choices": _memory_choices(d.memory, m.memory),
        "gpu_default": d.gpu,
        "gpu_max": m.gpu,
    }


def _launch_page(
    request: Request,
    db: Session,
    principal: Principal,
    entry: Entry,
    version: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
):
    cat: Catalogue = request.app.state.catalogue
    shown = version if version in entry.versions else entry.versions[0]
    meta = DatalabMeta.model_validate(cat.version(db, principal, entry.name, shown))
    limits = _limits(meta)
    defaults = {
        "name": "",
        "version": shown,
        "cpu": limits["cpu_default"],
        "memory": limits["memory_default"],
        "gpu": str(limits["gpu_default"]),
    }
    settings = request.app.state.settings
    offers = clusters.offers(settings, principal, request.app.state.labs.backend_class)
    active = len(service.list_for(db, principal, include_ended=False))
    errors = dict(errors or {})
    if "gpu" in errors and not limits["gpu_max"]:  # no GPU field on the form to show it at
        errors["page"] = errors.pop("gpu")
    chosen = (form or {}).pop("volumes", []) if form else []
    cluster = (form or {}).pop("cluster", "") if form else ""
    changed = any(v and v != defaults[k] for k, v in (form or {}).items() if k in defaults) or bool(chosen)
    return page(
        request,
        "lab_launch.html",
        title=f"Launch {entry.meta.title}",
        active="catalogue",
        status=status,
        headers=headers,
        entry=entry,
        limits=limits,
        form={**defaults, **(form or {})},
        errors=errors,
        clusters=offers,
        cluster=cluster or (offers[0].cluster.name if offers else ""),
        # The advanced section opens by itself when something in it needs the user's attention.
        advanced_open=changed or any(k not in ("page", "cluster") for k in errors),
        running=active,
        limit=service.running_limit(request.app.state.settings, principal),
        launch_blocked=service.launch_block(db, request.app.state.settings, principal),
        volumes=volume_service.list_visible(db, principal),
        chosen=[c for c in chosen if not c.startswith(volume_service.CUSTOM)],
        custom=next(
            (c[len(volume_service.CUSTOM) :] for c in chosen if c.startswith(volume_service.CUSTOM)), ""
        ),
        folders=_folders(request, principal),
        teams=sorted(principal.groups),
        team_scoped=meta.runtime.scope == "team",
        serves_model=entry.name == MODEL_DATALAB,
    )


def _folders(request: Request, principal: Principal) -> list[str]:
    """Top-level folders of the user's workspace: suggestions for a custom (read-only) volume."""
    try:
        tree = workspace_service.personal(request.app.state.settings, principal.user).tree
        return [e.name for e in tree.listdir((), 0, 200).entries if e.type == "dir"]
    except DatalabsError:
        return []


@router.get("/catalogue/{name}/launch", name="launch_datalab_page")
def launch_page(
    request: Request,
    name: str,
    version: str = Query("", max_length=64),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    entry = request.app.state.catalogue.get(db, principal, name)
    if version and version not in entry.versions:
        request.app.state.catalogue.version(db, principal, name, version)  # raises NotFound, a 404 page
    # An unavailable datalab gets the reason and no form; the POST would refuse it the same way.
    status = 200 if entry.available else 409
    return _launch_page(request, db, principal, entry, version, status=status)


def _cpu(text: str, errors: dict[str, str]) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        errors["cpu"] = "CPU must be a number above 0, such as 1 or 1.5"
        return None
    return value


def _memory(text: str, errors: dict[str, str]) -> str | None:
    if not text.strip():
        return None
    try:
        parse_memory(text.strip())
    except ValueError as exc:
        errors["memory"] = str(exc)
        return None
    return text.strip()


def _gpu(text: str, errors: dict[str, str]) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit():
        errors["gpu"] = "GPUs must be a whole number such as 0 or 1"
        return None
    return int(text)


def _readable(message: str) -> str:
    # Service messages name resources in lower case ("cpu request exceeds ..."); the form says "CPU".
    for word in ("cpu", "gpu"):
        if message.startswith(f"{word} "):
            return word.upper() + message[len(word) :]
    return message


@router.post("/catalogue/{name}/launch")
async def launch(
    request: Request,
    name: str,
    lab_name: str = Form("", alias="name", max_length=100),
    version: str = Form("", max_length=64),
    cpu: str = Form("", max_length=20),
    memory: str = Form("", max_length=20),
    gpu: str = Form("", max_length=5),
    volumes: list[str] = Form([], max_length=50),
    custom_volume: str = Form("", max_length=4096),
    cluster: str = Form("", max_length=64),
    team: str = Form("", max_length=64),
    model: str = Form("", max_length=200),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    cat: Catalogue = request.app.state.catalogue
    entry = cat.get(db, principal, name)
    form = dict(zip(_FIELDS, (lab_name, version, cpu, memory, gpu), strict=True))
    chosen = [v for v in volumes if v] + (
        [volume_service.CUSTOM + custom_volume.strip()] if custom_volume.strip() else []
    )
    form["volumes"], form["cluster"] = chosen, cluster
    errors: dict[str, str] = {}
    req = service.LaunchRequest(
        datalab=name,
        version=version or None,
        name=lab_name.strip(),
        cpu=_cpu(cpu, errors),
        memory=_memory(memory, errors),
        gpu=_gpu(gpu, errors),
        volumes=tuple(chosen),
        cluster=cluster or None,
        team=team or None,  # a team-scoped datalab's team, else the MLflow team chosen (labs/team_labs.py)
        model=model.strip() or None,
    )
    form["team"], form["model"] = team, model
    if errors:
        return _launch_page(request, db, principal, entry, version, form=form, errors=errors, status=422)

    def started(lab):
        # The "launched" message also tells the start page to open the lab once ready, even when it
        # already is by the time the page loads; being one-shot, Back to that page later does not bounce.
        return redirect(request, f"/labs/{lab.id}", f"You launched '{lab.name}'.", kind=LAUNCHED)

    def again(exc: DatalabsError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        errors = _placed(exc)
        page = partial(_launch_page, request, db, principal, entry, version, form=form)
        return page(errors=errors, status=exc.status, headers=headers)

    def action():
        return service.launch(db, request.app.state.settings, cat, request.app.state.labs, principal, req)

    return forms.submit(request, db, action, refused=again, then=started)


def _placed(exc: DatalabsError) -> dict[str, str]:
    """Where the launch form shows a refusal: "cpu request exceeds ..." next to the CPU field, a volume's
    problem next to the volumes, anything else above the form."""
    if exc.code in VOLUME_ERRORS:
        return {"volumes": exc.message}
    if exc.code == "unknown_cluster":
        return {"cluster": exc.message}
    field = exc.message.split(" ", 1)[0] if exc.code == "over_maximum" else ""
    return {field if field in ("cpu", "memory", "gpu") else "page": _readable(exc.message)}
