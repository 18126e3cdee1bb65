"""Where a version's sources come from, as `fill` functions for `service.add_version` and `drafts.stage`:
uploaded files (or one zip), a git clone, a workspace folder. Each writes through the `Staging` it is
given (which checks every entry) and returns the reference the version records as its `source_ref`.

The API and the "Create datalab" wizard both take their sources here, so they accept the same things."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.builder.sources import Staging, copy_tree, git_clone, write_files
from datalabs.config import Settings
from datalabs.errors import DatalabsError, Invalid
from datalabs.workspaces import service as workspaces
from datalabs.workspaces.paths import open_dir, parts_of

Fill = Callable[[Staging], str]


def uploaded(files: list[tuple[str, BinaryIO]]) -> Fill:
    """Uploaded files (names may carry relative folders), or a single .zip unpacked."""

    def fill(staging: Staging) -> str:
        write_files(staging, files)
        return ", ".join(n for n, _ in files)[:500]

    return fill


def from_git(settings: Settings, url: str, ref: str = "") -> Fill:
    """A shallow clone of `url` at `ref`; local paths only when the operator allows them."""
    allow_local = settings.builder.allow_local_git
    return lambda staging: f"{url}@{git_clone(staging, url, ref, allow_local=allow_local)}"


def from_workspace(db: Session, settings: Settings, principal: Principal, ws: str, path: str) -> Fill:
    """A folder of a workspace the principal may read; checked now, copied (without links) when filled."""
    space = workspaces.resolve(db, settings, principal, ws)
    parts = parts_of(path)
    folder = space.tree.root.joinpath(*parts)
    try:
        os.close(open_dir(space.tree.root, parts))  # walked without following links
    except DatalabsError:
        raise Invalid(f"'{path}' is not a folder of workspace '{space.id}'", code="not_a_folder") from None

    def fill(staging: Staging) -> str:
        copy_tree(staging, folder, f"workspace folder '{path}'", beneath=space.tree.root)
        return f"{space.id}:{'/'.join(parts)}"

    return fill
