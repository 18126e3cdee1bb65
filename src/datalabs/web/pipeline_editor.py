"""The pipeline editor: open a CWL document from a workspace (`?path=me/cwl/tool.cwl`), a registered
pipeline (`?pipeline=name`) or start a new one; edit it with validation messages as you type (htmx),
tabs Graph / Code / Test / Details, and Push a new version (admins: as a system pipeline). Its paths are
matched before `/pipelines/{name}`, so they are included first by `pipeline_pages`."""

from __future__ import annotations

from anyio import from_thread
from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.deps import get_db
from datalabs.errors import DatalabsError
from datalabs.pipelines import documents, editor, form, graph, registry, runs
from datalabs.pipelines.documents import Document
from datalabs.web import forms
from datalabs.web.render import fragment, page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


async def posted_form(request: Request) -> dict[str, str]:
    """The posted form's text fields (the generated forms' field names are not known in advance). As a
    dependency it lets the handlers stay synchronous, so FastAPI runs them, their database work and
    cwltool's validation, in its thread pool rather than on the event loop."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _check(draft: editor.Draft) -> tuple[Document | None, str]:
    """(document, "") when the text is valid, else (None, the validator's message with its line)."""
    try:
        return documents.load_text(draft.filename, draft.cwl), ""
    except DatalabsError as exc:
        return None, exc.message


def _editor_page(
    request: Request,
    db: Session,
    principal: Principal,
    draft: editor.Draft,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    saved: str = "",
):
    document, problem = _check(draft)
    errors = errors or {}
    existing = registry.list_visible(db, principal)
    return page(
        request,
        "pipeline_editor.html",
        title=f"Edit {draft.name}" if draft.name else "New pipeline",
        active="pipelines",
        status=status,
        draft=draft,
        lines=max(1, draft.cwl.count("\n") + 1),
        document=document,
        problem=problem,
        graph_svg=Markup(graph.svg(graph.graph(document.packed))) if document else "",
        fields=form.fields(document.inputs) if document else [],
        errors=errors,
        engines=registry.ENGINES,
        is_admin=principal.is_admin,
        known=[p.name for p in existing if registry.may_change(p, principal)],
        oob=False,
        saved=saved,
        # The tab to show first: where the problem is.
        tab="code" if errors.get("cwl") or errors.get("path") else ("details" if errors else "code"),
    )


@router.get("/pipelines/editor", name="pipeline_editor")
def editor_page(
    request: Request,
    path: str = Query("", max_length=4096),
    pipeline: str = Query("", max_length=64),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    settings = request.app.state.settings
    if path:
        draft = editor.from_workspace(db, settings, principal, path)
    elif pipeline:
        draft = editor.from_pipeline(editor.Draft(), registry.get_visible(db, principal, pipeline))
    else:
        draft = editor.Draft()
    return _editor_page(request, db, principal, draft)


@router.post("/pipelines/editor/validate", name="pipeline_editor_validate")
def validate(
    request: Request, _: Principal = Depends(posting_user), posted: dict[str, str] = Depends(posted_form)
):
    """The messages as you type (an htmx fragment), plus the Graph and Test tabs swapped out of band."""
    draft = editor.Draft.from_form(posted)
    document, problem = _check(draft)
    return fragment(
        request,
        "_pipeline_validation.html",
        document=document,
        problem=problem,
        graph_svg=Markup(graph.svg(graph.graph(document.packed))) if document else "",
        # The Test tab is re-made from the new text; values already typed in it are kept.
        fields=form.fields(document.inputs, posted) if document else [],
        errors={},
        oob=True,
    )


@router.post("/pipelines/editor/test", name="pipeline_editor_test")
def test_run(
    request: Request,
    principal: Principal = Depends(posting_user),
    posted: dict[str, str] = Depends(posted_form),
    db: Session = Depends(get_db),
):
    """Run the draft on the Test tab's inputs through the real queue and engine (an htmx fragment)."""
    draft = editor.Draft.from_form(posted)
    settings = request.app.state.settings
    try:
        pipeline = editor.push_test(db, principal, draft)
        params = documents.describe(pipeline.versions[-1].packed).inputs
        inputs, errors = form.parse(params, posted)
        if errors:
            db.rollback()
            return fragment(request, "_pipeline_test_result.html", run=None, problems=list(errors.values()))
        run = runs.submit(db, settings, principal, pipeline, inputs=inputs, output_space="me")
    except DatalabsError as exc:
        db.rollback()
        return fragment(request, "_pipeline_test_result.html", run=None, problems=[exc.message])
    db.commit()
    if (worker := getattr(request.app.state, "pipeline_worker", None)) is not None:
        worker.wake()
    return fragment(request, "_pipeline_test_result.html", run=run, problems=[])


@router.post("/pipelines/editor/save", name="pipeline_editor_save")
def save(
    request: Request,
    principal: Principal = Depends(posting_user),
    posted: dict[str, str] = Depends(posted_form),
    db: Session = Depends(get_db),
):
    """Save the text into the workspace; the page comes back as it was, with a message."""
    draft = editor.Draft.from_form(posted)
    settings, usage = request.app.state.settings, request.app.state.usage
    try:
        # The upload is asynchronous; this handler runs in the thread pool (it also validates the text).
        draft.path = from_thread.run(editor.save, db, settings, principal, usage, draft.path, draft.cwl)
    except DatalabsError as exc:
        return _editor_page(request, db, principal, draft, errors={"path": exc.message}, status=exc.status)
    return _editor_page(request, db, principal, draft, saved=f"Saved to {draft.path}.")


@router.post("/pipelines/editor", name="pipeline_push")
def push(
    request: Request,
    principal: Principal = Depends(posting_user),
    posted: dict[str, str] = Depends(posted_form),
    db: Session = Depends(get_db),
):
    draft = editor.Draft.from_form(posted)

    def pushed(made):
        pipeline, created = made
        what = "registered" if created else f"version {draft.version} pushed"
        return redirect(request, f"/pipelines/{pipeline.name}", f"Pipeline '{pipeline.name}' {what}.")

    def again(exc: DatalabsError):
        errors = {editor.error_place(exc.code): exc.message}
        return _editor_page(request, db, principal, draft, errors=errors, status=exc.status)

    return forms.submit(request, db, lambda: editor.push(db, principal, draft), refused=again, then=pushed)
