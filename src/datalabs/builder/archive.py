"""Export and import of an app as one zip: its metadata, every version's sources and build recipe, never
the built environment (the importing platform builds again).

Layout: `datalab-app.json` (format, name, base, builder, versions with their recipe and metadata) and
`versions/<version>/sources/...`. An import goes through the same checks as an upload (zip-slip,
symlinks, bombs, sizes) and the same metadata validation as any new version.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.builder import service
from datalabs.builder.sources import Staging, copy_tree, extract_zip
from datalabs.config import Settings
from datalabs.db.models import App, AppVersion
from datalabs.errors import Invalid
from datalabs.sandbox import parsing
from datalabs.workspaces import inflight

FORMAT = "datalabs-app/1"
MANIFEST = "datalab-app.json"
# Every version's metadata is in the manifest: room for hundreds of versions, not for a bomb.
MANIFEST_LIMITS = parsing.Limits(max_bytes=8 * 2**20, max_nodes=1_000_000, max_chars=8 * 2**20)


def export(settings: Settings, app: App) -> BinaryIO:
    """The app as a zip in an unnamed temporary file, positioned at its start (the caller closes it).
    Unnamed (O_TMPFILE), so a crash while it is written or sent leaves nothing behind."""
    out_dir = service.apps_dir(settings) / ".exports"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = tempfile.TemporaryFile(dir=out_dir)  # noqa: SIM115 (handed to the caller, who closes it)
    manifest = {
        "format": FORMAT,
        "name": app.name,
        "base": app.base,
        "builder": app.builder,
        "versions": [
            {
                "version": v.version,
                "source_kind": v.source_kind,
                "source_ref": v.source_ref,
                "requirements": v.requirements,
                "meta": v.meta,
            }
            for v in app.versions
        ],
    }
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=1))
        for v in app.versions:
            root = Path(v.sources_path)
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    zf.write(path, f"versions/{v.version}/sources/{path.relative_to(root).as_posix()}")
    out.seek(0)
    return out


def import_(
    db: Session, settings: Settings, principal: Principal, archive: BinaryIO, name: str = ""
) -> tuple[App, list[AppVersion]]:
    """A new app (named as in the archive, or `name`) with one new version per exported version."""
    unpacked = service.apps_dir(settings) / f".import-{uuid.uuid4().hex[:12]}"
    unpacked.parent.mkdir(parents=True, exist_ok=True)
    with inflight.journal(settings).hold_path(unpacked):  # removed at the end, or at start-up after a crash
        return _import(db, settings, principal, archive, name, unpacked)


def _import(
    db: Session, settings: Settings, principal: Principal, archive: BinaryIO, name: str, unpacked: Path
) -> tuple[App, list[AppVersion]]:
    staging = Staging(unpacked)
    try:
        extract_zip(staging, archive)
        manifest = _manifest(unpacked)
        app = service.create(db, principal, name or manifest["name"], manifest.get("base", "jupyterlab"))
        versions = []
        for entry in manifest["versions"]:
            src = unpacked / "versions" / str(entry.get("version", "")) / "sources"
            if not src.is_dir():
                raise Invalid(f"{MANIFEST}: version {entry.get('version')!r} has no sources in the archive")

            ref = f"archive of {manifest['name']} {entry['version']} ({entry.get('source_ref', '')})"[:500]

            def fill(target: Staging, src: Path = src, ref: str = ref) -> str:
                copy_tree(target, src, "the archive")
                return ref

            versions.append(service.add_version(db, settings, principal, app, fill, source_kind="import"))
        service.record(db, app, principal.name, "imported", f"from an archive of '{manifest['name']}'")
        return app, versions
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise Invalid(f"not a datalab archive: {MANIFEST} is missing", code="bad_archive")
    try:
        text = parsing.read_bounded(path, MANIFEST, MANIFEST_LIMITS)
        data = parsing.load_json(text, MANIFEST, MANIFEST_LIMITS)
    except parsing.DocumentError as exc:
        raise Invalid(exc.message, code="bad_archive") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise Invalid(f"{MANIFEST}: 'format' must be '{FORMAT}'", code="bad_archive")
    if not isinstance(data.get("name"), str) or not isinstance(data.get("versions"), list):
        raise Invalid(f"{MANIFEST}: 'name' (text) and 'versions' (a list) are required", code="bad_archive")
    if not data["versions"]:
        raise Invalid(f"{MANIFEST}: the archive holds no version", code="bad_archive")
    return data
