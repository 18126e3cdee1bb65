"""Harvest a data volume into the index: parallel, incremental (only new or changed files), resumable.

What was seen is kept per collection in DATALABS_HOME/assets/harvest/<collection>.tsv (path, size,
mtime in ns, and the harvest error if any), so the next run reads only files whose size or mtime
changed, drops files that disappeared, and does not retry a corrupt file until it changes.
A file a harvester rejects is still indexed with what the file system says, its reason in
`properties.harvest_error`, so it stays findable and the report lists it.

Files are read in budget workers (`sandbox.budget`): each file within `FILE_BUDGET` of memory and time.
A file that needs more (a hostile or broken FITS header, a RINEX file that decompresses without end) is
recorded like one its harvester rejects, with the reason, and the harvest goes on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from datalabs.assets import harvesters
from datalabs.assets.base import AssetIndex, AssetRecord, HarvestError, asset_id
from datalabs.assets.harvesters.generic import file_record
from datalabs.sandbox import budget

CHUNK = 64  # files per task handed to a worker process
FILE_BUDGET = budget.Budget(memory=1024 * 2**20, cpu=60, wall=120)


@dataclass
class Report:
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _walk(root: Path) -> Iterator[tuple[str, int, int]]:
    """(relative path, size, mtime ns) of every regular file below `root`, hidden entries skipped."""
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield Path(entry.path).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns


def _load_seen(path: Path) -> dict[str, tuple[int, int, str]]:
    seen: dict[str, tuple[int, int, str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            rel, size, mtime, error = line.split("\t", 3)
            seen[rel] = (int(size), int(mtime), error)
    return seen


def _save_seen(path: Path, seen: dict[str, tuple[int, int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as out:
        for rel, (size, mtime, error) in seen.items():
            out.write(f"{rel}\t{size}\t{mtime}\t{error}\n")
    os.replace(tmp, path)


@cache
def _harvesters() -> list:
    return harvesters.available()  # once per worker process: plugins load once


def harvest_file(root: str, collection: str, rel: str) -> tuple[AssetRecord, str] | None:
    """Runs in a budget worker: the file's record and its harvest error ('' if none); None if it
    vanished or cannot be read at all."""
    path = Path(root) / rel
    try:
        return harvesters.harvest(path, collection, rel, _harvesters()), ""
    except HarvestError as e:
        try:
            record = file_record(path, collection, rel)
        except HarvestError:
            return None  # vanished or unreadable: not indexed, reported below
        record.properties["harvest_error"] = e.reason
        return record, e.reason


def _harvest_chunk(
    root: str, collection: str, rels: list[str], file_budget: budget.Budget
) -> list[tuple[AssetRecord, str]]:
    """Each file of the chunk harvested within `file_budget`; one over it is kept with what the file
    system says and the reason, as a file its harvester rejects."""
    out = []
    items = [(root, collection, rel) for rel in rels]
    for outcome in budget.map_items(
        harvest_file, items, budget=file_budget, what=lambda args: f"reading {args[2]}", wait=math.inf
    ):
        if outcome.error is None:
            if outcome.value is not None:
                out.append(outcome.value)
            continue
        if not isinstance(outcome.error, budget.OverBudget | budget.ParserCrashed):
            raise outcome.error
        rel = outcome.args[2]
        try:
            record = file_record(Path(root) / rel, collection, rel)
        except HarvestError:
            continue
        record.properties["harvest_error"] = outcome.error.message
        out.append((record, outcome.error.message))
    return out


def harvest_volume(
    index: AssetIndex,
    root: Path,
    collection: str,
    state_dir: Path,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    file_budget: budget.Budget = FILE_BUDGET,
) -> Report:
    """Harvest every new or changed file under `root` into `index` as `collection`, each file within
    `file_budget`."""
    seen_path = state_dir / f"{collection}.tsv"
    seen = _load_seen(seen_path)
    report, todo, present = Report(), [], {}
    for rel, size, mtime in _walk(root):
        present[rel] = (size, mtime)
        old = seen.get(rel)
        if old and old[:2] == (size, mtime):
            report.unchanged += 1
        else:
            todo.append(rel)
    report.seen = len(present)
    gone = [rel for rel in seen if rel not in present]
    report.removed = index.delete(asset_id(collection, rel) for rel in gone) if gone else 0
    for rel in gone:
        del seen[rel]
    chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
    done = 0
    # The harvesters' libraries (astropy, netCDF4, hatanaka) are imported once, by the forkserver.
    budget.preload("datalabs.assets.harvest", *{type(h).__module__ for h in _harvesters()})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # threads wait; workers parse
        results = pool.map(lambda chunk: _harvest_chunk(str(root), collection, chunk, file_budget), chunks)
        batch: list[AssetRecord] = []
        for chunk, result in zip(chunks, results, strict=True):
            for record, error in result:
                batch.append(record)
                if record.path in seen:
                    report.updated += 1
                else:
                    report.added += 1
                if error:
                    report.errors.append((record.path, error))
                seen[record.path] = (*present[record.path], error.replace("\t", " ").replace("\n", " "))
            done += len(chunk)
            if progress:
                progress(done, len(todo))
            if len(batch) >= 50_000:
                index.ingest(batch)
                batch = []
        if batch:
            index.ingest(batch)
    _save_seen(seen_path, seen)
    return report
