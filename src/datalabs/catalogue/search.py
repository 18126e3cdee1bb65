"""Catalogue search over an in-memory snapshot that is rebuilt whenever the `catalogue` counter in the DB
changes. A process asks the DB for the counter at most every `catalogue.refresh_interval` seconds, and
at once after it committed a change itself (`generation.bump`), so its own changes show on its next
request and other replicas' within the interval. Searches, and each audience's view of the catalogue,
are remembered per snapshot: a repeated search costs a dict lookup."""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from datalabs.accounts.principal import Principal
from datalabs.catalogue.entries import Entry, GpuSources, make_entry, newest_first, version_visible
from datalabs.catalogue.generation import changes_here
from datalabs.db.models import Counter, Datalab, DatalabVersion
from datalabs.errors import NotFound

FACETS = ("kind", "mission", "instrument", "keyword", "domain")


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
        entries = [make_entry(name, vs, gpu) for name, vs in versions.items()]
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
        return seen == changes_here() and time.monotonic() - at < self.refresh_interval

    def _current(self, db: Session) -> _Snapshot:
        if self._fresh():
            return self._snapshot
        # Read before asking: a change committed meanwhile is then seen now or makes the next use ask.
        checked = (changes_here(), time.monotonic())
        # A connection of its own, returned at once: the request's session must not hold one while the
        # response is serialised on another worker thread (under load that exhausted the pool).
        with db.get_bind().connect() as conn:
            generation = conn.scalar(select(Counter.value).where(Counter.name == "catalogue")) or 0
        if generation != self._snapshot.generation:
            with self._lock:
                if generation != self._snapshot.generation:
                    rows = db.scalars(select(Datalab).options(selectinload(Datalab.versions))).all()
                    versions = {d.name: newest_first(d) for d in rows if d.versions}
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
        if seen != changes_here():
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


def _view(snapshot: _Snapshot, entry: Entry, principal: Principal) -> Entry | None:
    """`entry` as the principal may see it: None when they may see nothing of it; else only the
    versions they may see, its metadata (title, search text, facets, default) from the newest of those,
    so nothing of an unpublished version reaches the public."""
    if not entry.access:
        return entry if principal.in_any(entry.groups) else None
    shown = tuple(v for v in entry.versions if version_visible(entry, v, principal))
    if not shown:
        return None
    if len(shown) == len(entry.versions):
        return entry
    key = (entry.name, shown)
    view = snapshot.views.get(key)
    if view is None:
        wanted = set(shown)
        shown_versions = [(v, raw) for v, raw in snapshot.versions[entry.name] if v in wanted]
        view = make_entry(entry.name, shown_versions, snapshot.gpu_sources)
        snapshot.views[key] = view  # a plain dict store: a race only builds the same view twice
    return view


def _relevance(entry: Entry, word: str) -> int:
    m = entry.meta
    if word in m.name or word in m.title.lower():
        return 4
    if any(word in k.lower() for k in m.keywords + m.mission + m.instrument):
        return 2
    return 1 if word in m.abstract.lower() else 0
