"""One datalab as the catalogue shows it (`Entry`), built from its versions' metadata, with who may see it and
whether it can start here (`availability`)."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from datalabs import plugins
from datalabs.accounts.principal import Principal
from datalabs.catalogue import builds
from datalabs.catalogue.schema import DatalabMeta
from datalabs.db.models import Datalab
from datalabs.runtimes import desktop, gpus
from datalabs.sandbox.bwrap import sandbox_path


@dataclass(frozen=True)
class Entry:
    """One datalab as the catalogue shows it: the newest version's metadata plus all its versions.

    For a datalab built on the platform (see builder.publish) `access` holds each version's `_app`
    rules, and what a principal gets from `Catalogue.get`/`search` is their view of it: only the
    versions they may see, the newest of those as its default."""

    name: str
    meta: DatalabMeta
    raw: dict
    versions: list[str]
    groups: list[str]
    available: bool
    unavailable_reason: str
    text: str = field(repr=False)
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    facets_lower: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    access: dict[str, VersionAccess] = field(default_factory=dict, repr=False)
    # What callers derive from the entry and may keep as long as it lives (one snapshot), e.g. the API's
    # JSON card: `memo.get(key)`, else compute and store (a race only computes it twice).
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.meta.runtime.kind


@dataclass(frozen=True)
class VersionAccess:
    """Who may see one version of a datalab built on the platform: its `_app` rules and its groups."""

    app: dict
    groups: tuple[str, ...]

    @classmethod
    def of(cls, raw: dict) -> VersionAccess | None:
        app = raw.get("_app")
        if not isinstance(app, dict):
            return None
        runtime = raw.get("runtime") if isinstance(raw.get("runtime"), dict) else {}
        groups = set(raw.get("allowed_groups") or ()) | set(runtime.get("allowed_groups") or ())
        return cls(app=app, groups=tuple(sorted(groups)))

    def visible_to(self, principal: Principal) -> bool:
        """Published: everyone in its groups (empty = all). Not published: its author, whom it is shared
        with, admins and, while this version is under review, moderators."""
        app = self.app
        if app.get("public") and principal.in_any(list(self.groups)):
            return True
        return (
            principal.user.role == "admin"
            or principal.name == app.get("owner")
            or principal.name in app.get("users", ())
            or bool(principal.groups.intersection(app.get("groups", ())))
            or (bool(app.get("review")) and principal.is_moderator)
        )


def version_key(v: str) -> tuple:
    try:
        return (1, Version(v), v)
    except InvalidVersion:
        return (0, Version("0"), v)


@dataclass(frozen=True)
class GpuSources:
    """Where GPUs can come from: this server's device nodes (`labs.gpu_device_root`), and whether a
    configured cluster offers GPUs of its own (its scheduler then judges a request)."""

    root: Path = gpus.DEFAULT_ROOT
    on_clusters: bool = False

    @classmethod
    def of(cls, settings) -> GpuSources:
        return cls(settings.labs.gpu_device_root, any(_offers_gpus(c) for c in settings.clusters))


def _offers_gpus(cluster) -> bool:
    o = cluster.options
    declared = cluster.resources is not None and cluster.resources.maximum.gpu > 0
    return cluster.backend != "local" and bool(o.gpu_type or o.gpu_partition or declared)


def availability(meta: DatalabMeta, gpu_sources: GpuSources = GpuSources()) -> tuple[bool, str]:
    """Whether this platform can launch the datalab now, and why not."""
    kind = meta.runtime.kind
    if kind not in plugins.runtime_kinds():
        return False, f"no runtime for {kind} datalabs is installed on this platform yet"
    # e.g. "needs a GPU; this server has none", unless a cluster offers GPUs
    if not gpu_sources.on_clusters and (
        why := gpus.shortfall(meta.runtime.resources.default.gpu, gpu_sources.root)
    ):
        return False, why
    if kind == "desktop":  # the desktop session's own tools (Xvnc, window manager) count too
        several = bool(meta.runtime.desktop and meta.runtime.desktop.apps)
        missing = desktop.missing_tools(meta.runtime.requires, meta.runtime.packages, several_apps=several)
    else:
        missing = [cmd for cmd in meta.runtime.requires if shutil.which(cmd, path=sandbox_path()) is None]
    if missing:
        return False, f"not installed on this host: {', '.join(missing)}"
    build = (meta.model_extra or {}).get("_build")
    env = build.get("env") if isinstance(build, dict) else None
    if isinstance(build, dict) and build.get("key") and not env:
        return False, builds.unbuilt_reason(build)
    if env:  # the packages a kernel of its built environment imports
        packages = builds.missing_in(Path(env), meta.runtime.python_packages)
    else:
        packages = [p for p in meta.runtime.python_packages if importlib.util.find_spec(p) is None]
    if packages and env:
        return False, f"its built environment lacks {', '.join(packages)}"
    if packages:
        return False, f"its Python environment is not built yet (missing {', '.join(packages)})"
    return True, ""


def make_entry(name: str, versions: list[tuple[str, dict]], gpu_sources: GpuSources) -> Entry:
    """The entry for `versions` ((version, stored metadata), newest first, at least one)."""
    newest = versions[0][1]
    meta = DatalabMeta.model_validate(newest)
    ok, reason = availability(meta, gpu_sources)
    text = " ".join(
        [
            meta.name,
            meta.title,
            meta.alternateName,
            meta.abstract,
            meta.description,
            meta.domain,
            *meta.mission,
            *meta.instrument,
            *meta.keywords,
            meta.creator.name,
        ]
    ).lower()
    facets = {
        "kind": (meta.runtime.kind,),
        "mission": tuple(meta.mission),
        "instrument": tuple(meta.instrument),
        "keyword": tuple(meta.keywords),
        "domain": (meta.domain,) if meta.domain else (),
    }
    access = {v: a for v, raw in versions if (a := VersionAccess.of(raw)) is not None}
    return Entry(
        name=name,
        meta=meta,
        raw=newest,
        versions=[v for v, _ in versions],
        groups=meta.groups,
        available=ok,
        unavailable_reason=reason,
        text=text,
        facets=facets,
        facets_lower={f: frozenset(v.lower() for v in values) for f, values in facets.items()},
        access=access,
    )


def newest_first(datalab: Datalab) -> list[tuple[str, dict]]:
    rows = sorted(datalab.versions, key=lambda v: version_key(v.version), reverse=True)
    return [(v.version, v.meta) for v in rows]


def thumbnail_url(name: str, raw: dict, version: str | None = None) -> str:
    """Where a browser gets the datalab's thumbnail: ours when its files bring one, else its http(s) URL."""
    if raw.get("_thumbnail_path"):
        return f"/api/v1/datalabs/{name}/thumbnail" + (f"?version={version}" if version else "")
    url = raw.get("thumbnailUrl", "")
    return url if url.startswith(("http://", "https://")) else ""


def public_meta(raw: dict) -> dict:
    """The metadata as written, without the keys the platform adds for itself (`_...`)."""
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def visible_to(entry: Entry, principal: Principal) -> bool:
    """Whether the principal may see the datalab at all: group rules for definitions from files; for one
    built on the platform, whether they may see any of its versions (see `VersionAccess`)."""
    if entry.access:
        return any(version_visible(entry, v, principal) for v in entry.versions)
    return principal.in_any(entry.groups)


def version_visible(entry: Entry, version: str, principal: Principal) -> bool:
    access = entry.access.get(version)
    # A version without rules of its own (none today) follows the datalab's group rules.
    return access.visible_to(principal) if access else principal.in_any(entry.groups)
