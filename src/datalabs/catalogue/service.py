"""The catalogue: definitions synced from directories into the DB, versions, search and visibility.

Searches run over an in-memory snapshot that is rebuilt whenever the `catalogue` counter in the DB
changes. A process asks the DB for the counter at most every `catalogue.refresh_interval` seconds, and
at once after it committed a change itself (`bump` marks the session; `_after_commit` counts it), so
its own changes show on its next request and other replicas' within the interval. Searches, and each
audience's view of the catalogue, are remembered per snapshot: a repeated search costs a dict lookup.
"""

from __future__ import annotations

import gc
import importlib.util
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version
from sqlalchemy import delete, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from datalabs import plugins
from datalabs.accounts.principal import Principal
from datalabs.catalogue import builds
from datalabs.catalogue.loader import BUILTIN_DIR, Loaded, Problem, load_directories
from datalabs.catalogue.schema import DatalabMeta
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import CatalogueProblem, Counter, Datalab, DatalabVersion
from datalabs.errors import NotFound
from datalabs.runtimes import desktop, gpus
from datalabs.sandbox.bwrap import sandbox_path

FACETS = ("kind", "mission", "instrument", "keyword", "domain")


def sources(settings: Settings) -> list[tuple[Path, str]]:
    builtin = [(BUILTIN_DIR, "builtin")] if settings.catalogue.builtin else []
    return builtin + [(Path(d), "dir") for d in settings.catalogue.dirs]


def reload(db: Session, settings: Settings) -> list[Problem]:
    """Load every configured directory into the DB; returns (and stores) the problems found."""
    loaded, problems = load_directories(sources(settings))
    sync(db, loaded, problems, settings)
    return problems


def reload_at_start(sessions: sessionmaker[Session], settings: Settings) -> list[Problem]:
    """`reload` in a transaction of its own. Replicas starting together sync the same files: of two
    inserting one datalab, one commits and the other's unique key fails; it tries again and finds it."""
    for attempt in range(5):
        try:
            with transaction(sessions) as db:
                return reload(db, settings)
        except IntegrityError:
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def sync(
    db: Session, loaded: list[Loaded], problems: list[Problem], settings: Settings | None = None
) -> None:
    """Make the file-sourced definitions in the DB match `loaded`; DB-sourced ones are left alone.
    With `settings`, versions built by the platform carry their build's state (`builds.mirror`)."""
    existing = {d.name: d for d in db.scalars(select(Datalab).options(selectinload(Datalab.versions)))}
    wanted: dict[str, dict[str, Loaded]] = {}
    for item in loaded:
        wanted.setdefault(item.meta.name, {})[item.meta.version] = item
    for name, versions in wanted.items():
        datalab = existing.get(name)
        if datalab is None:
            datalab = Datalab(name=name, source=next(iter(versions.values())).source)
            db.add(datalab)
        elif datalab.source == "db":
            problems.append(
                Problem(
                    str(next(iter(versions.values())).path),
                    "name",
                    f"'{name}' is already a datalab built on the platform; file ignored",
                )
            )
            continue
        current = {v.version: v for v in datalab.versions}
        for version, item in versions.items():
            meta = _stored_meta(item, settings)
            row = current.get(version)
            if row is None:
                datalab.versions.append(
                    DatalabVersion(version=version, meta=meta, source_path=str(item.path))
                )
            elif row.meta != meta or row.source_path != str(item.path):
                row.meta, row.source_path = meta, str(item.path)
        for version, row in current.items():
            if version not in versions:
                datalab.versions.remove(row)
    for name, datalab in existing.items():
        if datalab.source != "db" and name not in wanted:
            db.delete(datalab)
    db.execute(delete(CatalogueProblem))
    db.add_all(CatalogueProblem(path=p.path, key=p.key, reason=p.reason) for p in problems)
    db.flush()
    bump(db)


def _stored_meta(item: Loaded, settings: Settings | None = None) -> dict:
    meta = item.meta.model_dump(mode="json", by_alias=True)
    thumb = item.thumbnail_path
    meta["_thumbnail_path"] = str(thumb) if thumb else ""
    meta.pop("_build", None)  # only the platform says what was built, never a definition file
    if settings is not None and (build := builds.mirror(settings, item.meta, item.path.parent)):
        meta["_build"] = build
    return meta


def bump(db: Session) -> None:
    """Move the catalogue's generation: every process rebuilds its snapshot, this one on its next use
    after `db` commits, the others within `catalogue.refresh_interval` seconds."""
    counter = db.get(Counter, "catalogue")
    if counter is None:
        db.add(Counter(name="catalogue", value=1))
    else:
        counter.value += 1
    db.flush()
    db.info[_BUMPED] = True


# Catalogue changes this process committed: a Catalogue that saw fewer asks the DB at once.
_BUMPED = "datalabs.catalogue.bumped"
_changes_here = 0


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    global _changes_here
    if session.info.pop(_BUMPED, False):
        _changes_here += 1


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_BUMPED, None)  # nothing changed after all


def problems(db: Session) -> list[CatalogueProblem]:
    return list(db.scalars(select(CatalogueProblem).order_by(CatalogueProblem.path, CatalogueProblem.id)))


# ---- snapshot and search ----------------------------------------------------------------------------


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


@dataclass
class SearchResult:
    """One page of a search. `facets` and `memo` are shared by every page of the same search in the same
    snapshot (remembered): read them, never change them; `memo` is for what callers derive from the
    whole search (e.g. the API's facets JSON), like `Entry.memo`."""

    items: list[Entry]
    total: int
    facets: dict[str, list[tuple[str, int]]]
    memo: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class _Found:
    """A whole search's answer, before paging."""

    matches: list[Entry]
    facets: dict[str, list[tuple[str, int]]]
    memo: dict = field(default_factory=dict)


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


def _entry(name: str, versions: list[tuple[str, dict]], gpu_sources: GpuSources) -> Entry:
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


def _newest_first(datalab: Datalab) -> list[tuple[str, dict]]:
    rows = sorted(datalab.versions, key=lambda v: version_key(v.version), reverse=True)
    return [(v.version, v.meta) for v in rows]


REMEMBERED = 512  # searches (and audiences' views) kept per snapshot; the oldest go first


@dataclass(frozen=True)
class _Snapshot:
    generation: int
    entries: list[Entry]
    # Per datalab with per-version access: its versions' metadata, to build principals' views from.
    versions: dict[str, list[tuple[str, dict]]]
    gpu_sources: GpuSources = GpuSources()  # the catalogue's, for the views' availability
    # Views already built, by datalab and the versions shown: few distinct ones (the public's, the
    # author's, ...), and they belong to this generation only.
    views: dict[tuple[str, tuple[str, ...]], Entry] = field(default_factory=dict)
    by_name: dict[str, Entry] = field(default_factory=dict)
    groups: frozenset[str] = frozenset()  # every group a definition is restricted to
    # Remembered for this generation: each audience's visible entries, and whole searches by
    # (audience, words, filters). Bounded (`remember`): the queries are the users' to choose.
    visible: dict[tuple, list[Entry]] = field(default_factory=dict)
    found: dict[tuple, _Found] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, generation: int, versions: dict[str, list[tuple[str, dict]]], gpu: GpuSources) -> _Snapshot:
        entries = [_entry(name, vs, gpu) for name, vs in versions.items()]
        entries.sort(key=lambda e: e.meta.title.lower())
        gated = {e.name: versions[e.name] for e in entries if e.access}
        return cls(
            generation,
            entries,
            gated,
            gpu,
            by_name={e.name: e for e in entries},
            groups=frozenset(g for e in entries for g in e.groups),
        )

    def audience(self, principal: Principal) -> tuple:
        """What decides which entries, and which views of them, the principal sees: principals with the
        same audience see the same catalogue, so what is remembered for one serves the other.

        Definitions from files follow group rules alone (`Principal.in_any`): an admin sees all, anyone
        else what their groups among the restricted ones open. Datalabs built on the platform also name
        their author, whom they are shared with and moderators (`VersionAccess`): then each user is an
        audience of their own."""
        role = principal.user.role
        if self.versions:
            return ("user", principal.name, role, principal.is_moderator, principal.groups)
        if role == "admin":
            return ("admin",)
        return ("groups", principal.groups & self.groups)

    def remember(self, cache: dict, key: tuple, value):
        with self.lock:  # eviction iterates the dict: no other thread may insert meanwhile
            if len(cache) >= REMEMBERED:
                del cache[next(iter(cache))]
            cache[key] = value
        return value


class Catalogue:
    """Per-process snapshot of the catalogue, refreshed when the DB counter moves (asked at most every
    `refresh_interval` seconds, and at once after this process committed a change: see `bump`)."""

    def __init__(self, gpu_sources: GpuSources = GpuSources(), refresh_interval: float = 1.0) -> None:
        self.gpu_sources = gpu_sources
        self.refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(-1, [], {})
        self._checked = (-1, float("-inf"))  # (this process's changes seen, monotonic time) of the last ask
        self._asking_since = float("-inf")  # when `remembered` last sent a caller to ask the DB

    def _fresh(self) -> bool:
        """Whether the snapshot may be used without asking the DB."""
        seen, at = self._checked
        return seen == _changes_here and time.monotonic() - at < self.refresh_interval

    def _current(self, db: Session) -> _Snapshot:
        if self._fresh():
            return self._snapshot
        # Read before asking: a change committed meanwhile is then seen now or makes the next use ask.
        checked = (_changes_here, time.monotonic())
        # A connection of its own, returned at once: the request's session must not hold one while the
        # response is serialised on another worker thread (under load that exhausted the pool).
        with db.get_bind().connect() as conn:
            generation = conn.scalar(select(Counter.value).where(Counter.name == "catalogue")) or 0
        if generation != self._snapshot.generation:
            with self._lock:
                if generation != self._snapshot.generation:
                    rows = db.scalars(select(Datalab).options(selectinload(Datalab.versions))).all()
                    versions = {d.name: _newest_first(d) for d in rows if d.versions}
                    self._snapshot = _Snapshot.of(generation, versions, self.gpu_sources)
                    # It lives until the catalogue changes: out of the collector's full passes, as what
                    # app start made (1,000 definitions are ~80,000 objects: 70 ms a pass, several a
                    # second under load). Freed by reference counting when replaced (no cycles).
                    gc.freeze()
        self._checked = checked
        return self._snapshot

    def entries(self, db: Session) -> list[Entry]:
        """Every datalab with all its versions, whoever may see them: for admins and internal lookups.
        What a user is shown comes from `visible`, `search` and `get`."""
        return self._current(db).entries

    def visible(self, db: Session, principal: Principal) -> list[Entry]:
        """The principal's view of every datalab they may see, ordered by title."""
        return list(_visible(self._current(db), principal))

    def search(
        self,
        db: Session,
        principal: Principal,
        *,
        q: str = "",
        filters: dict[str, list[str]] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> SearchResult:
        """Visible datalabs matching every word of `q` and, per facet, any of the chosen values.

        Facet counts are computed over the other filters, so choosing a value never hides its siblings."""
        snapshot = self._current(db)
        key = _search_key(snapshot, principal, q, filters)
        found = snapshot.found.get(key) or snapshot.remember(
            snapshot.found, key, _find(snapshot, principal, key[1], dict(key[2]))
        )
        return _page(found, limit, offset)

    def remembered(
        self,
        principal: Principal,
        *,
        q: str = "",
        filters: dict[str, list[str]] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> SearchResult | None:
        """`search`'s answer when it needs neither the DB nor any work: this audience made this search in
        the snapshot before, and the snapshot is fresh; else None (then call `search`). For async routes,
        which can then answer without a worker thread.

        When only the interval has run out, one caller gets None and asks the DB; the others keep being
        answered from the snapshot meanwhile (for at most another interval), instead of all of them
        queueing for worker threads to ask the same question. After a change committed by this process,
        every caller gets None until the DB was asked."""
        seen, at = self._checked
        if seen != _changes_here:
            return None
        now = time.monotonic()
        if now - at >= self.refresh_interval and now - self._asking_since >= self.refresh_interval:
            self._asking_since = now
            return None
        snapshot = self._snapshot
        found = snapshot.found.get(_search_key(snapshot, principal, q, filters))
        return None if found is None else _page(found, limit, offset)

    def get(self, db: Session, principal: Principal, name: str) -> Entry:
        """The principal's view of the datalab (only versions they may see; the newest of those is its
        default), or NotFound also when they may see none of it (its existence stays hidden)."""
        snapshot = self._current(db)
        entry = snapshot.by_name.get(name)
        if entry is not None and (view := _view(snapshot, entry, principal)) is not None:
            return view
        raise NotFound(f"no datalab '{name}'", code="datalab_not_found")

    def version(self, db: Session, principal: Principal, name: str, version: str) -> dict:
        """One version's stored metadata; NotFound for a version the principal may not see, exactly as
        for one that does not exist (a lab of it cannot be launched either)."""
        entry = self.get(db, principal, name)
        if version not in entry.versions:
            raise NotFound(f"datalab '{name}' has no version '{version}'", code="version_not_found")
        row = db.scalar(
            select(DatalabVersion)
            .join(Datalab)
            .where(Datalab.name == name, DatalabVersion.version == version)
        )
        return dict(row.meta) if row else {}


def _visible(snapshot: _Snapshot, principal: Principal) -> list[Entry]:
    """The principal's views, ordered by title; remembered per audience (shared: do not change it)."""
    audience = snapshot.audience(principal)
    views = snapshot.visible.get(audience)
    if views is not None:
        return views
    pairs = [(e, _view(snapshot, e, principal)) for e in snapshot.entries]
    views = [v for _, v in pairs if v is not None]
    if any(v is not None and v is not e for e, v in pairs):  # a view's title may sort elsewhere
        views.sort(key=lambda e: e.meta.title.lower())
    return snapshot.remember(snapshot.visible, audience, views)


def _search_key(snapshot: _Snapshot, principal: Principal, q: str, filters: dict | None) -> tuple:
    """(audience, words, ((facet, values), ...)): everything a search's answer depends on in a snapshot."""
    wanted = {f: tuple(sorted({v.lower() for v in vals})) for f, vals in (filters or {}).items() if vals}
    return (snapshot.audience(principal), tuple(q.lower().split()), tuple(sorted(wanted.items())))


def _find(snapshot: _Snapshot, principal: Principal, words: tuple[str, ...], wanted: dict) -> _Found:
    visible = [e for e in _visible(snapshot, principal) if all(w in e.text for w in words)]
    if words:  # most relevant first: words in the name or title beat keywords, which beat prose
        visible.sort(key=lambda e: -sum(_relevance(e, w) for w in words))
    # One pass: an entry matches if it fails no filter; it counts towards facet F's values if the
    # only filter it fails (if any) is F's own, so choosing a value never hides its siblings.
    matches: list[Entry] = []
    counts: dict[str, dict[str, int]] = {f: {} for f in FACETS}
    for e in visible:
        failing = [f for f, values in wanted.items() if not e.facets_lower[f].intersection(values)]
        if not failing:
            matches.append(e)
        if len(failing) > 1:
            continue
        for facet in failing or FACETS:
            facet_counts = counts[facet]
            for value in e.facets[facet]:
                facet_counts[value] = facet_counts.get(value, 0) + 1
    facets = {f: sorted(c.items(), key=lambda kv: (-kv[1], kv[0].lower())) for f, c in counts.items()}
    return _Found(matches, facets)


def _page(found: _Found, limit: int, offset: int) -> SearchResult:
    items = found.matches[offset : offset + limit]
    return SearchResult(items=items, total=len(found.matches), facets=found.facets, memo=found.memo)


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
        return any(_version_visible(entry, v, principal) for v in entry.versions)
    return principal.in_any(entry.groups)


def _version_visible(entry: Entry, version: str, principal: Principal) -> bool:
    access = entry.access.get(version)
    # A version without rules of its own (none today) follows the datalab's group rules.
    return access.visible_to(principal) if access else principal.in_any(entry.groups)


def _view(snapshot: _Snapshot, entry: Entry, principal: Principal) -> Entry | None:
    """`entry` as the principal may see it: None when they may see nothing of it; else only the
    versions they may see, its metadata (title, search text, facets, default) from the newest of those,
    so nothing of an unpublished version reaches the public."""
    if not entry.access:
        return entry if principal.in_any(entry.groups) else None
    shown = tuple(v for v in entry.versions if _version_visible(entry, v, principal))
    if not shown:
        return None
    if len(shown) == len(entry.versions):
        return entry
    key = (entry.name, shown)
    view = snapshot.views.get(key)
    if view is None:
        wanted = set(shown)
        shown_versions = [(v, raw) for v, raw in snapshot.versions[entry.name] if v in wanted]
        view = _entry(entry.name, shown_versions, snapshot.gpu_sources)
        snapshot.views[key] = view  # a plain dict store: a race only builds the same view twice
    return view


def _relevance(entry: Entry, word: str) -> int:
    m = entry.meta
    if word in m.name or word in m.title.lower():
        return 4
    if any(word in k.lower() for k in m.keywords + m.mission + m.instrument):
        return 2
    return 1 if word in m.abstract.lower() else 0
