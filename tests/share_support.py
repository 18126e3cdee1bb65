"""Labs that may be shared "view" (issue 19): only a lab that enforces view may (labs/shares.enforces_view).
Tests that share a fake lab view-only give it a datalab version whose definition loads the platform's
JupyterLab authorizer (the fake runtime serves it all the same: it looks at the command's first word)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from datalabs.db.models import Datalab, DatalabVersion
from datalabs.labs.shares import AUTHORIZER_FLAG

VIEWABLE_COMMAND = ["fake-lab", AUTHORIZER_FLAG]
# The same command as a YAML flow sequence's items, for definition files (test_labs.FAKE's {command}).
VIEWABLE_YAML = f'fake-lab, "{AUTHORIZER_FLAG}"'
VIEWABLE_DEFINITION = (
    f'title: Fake Lab\nversion: "1.0"\nruntime:\n  kind: web\n  command: [{VIEWABLE_YAML}]\n'
)
DESKTOP_RUNTIME = {"kind": "desktop", "desktop": {"command": ["fake-lab"]}}


def add_datalab(db: Session, name: str, version: str, runtime: dict[str, Any] | None = None) -> None:
    """A catalogue row `name` `version` (added to the session, not committed) whose definition's runtime is
    `runtime`, by default a web lab that loads the authorizer (one that may be shared view-only)."""
    runtime = runtime if runtime is not None else {"kind": "web", "command": VIEWABLE_COMMAND}
    meta = {"name": name, "title": name, "version": version, "runtime": runtime}
    db.add(Datalab(name=name, source="db", versions=[DatalabVersion(version=version, meta=meta)]))
    db.flush()
