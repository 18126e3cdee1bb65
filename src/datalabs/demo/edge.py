"""The edge flow through the platform's own triggers (issue 18): `datalabs demo edge`.

"Record everything cheap, keep the expensive only around events". Set up once, through the API of a
running platform, as an administrator (registering volumes is theirs); running it again finds what is there:

- the station folder as the data volume `station-<STATION>` (the recorder reads its `hifi/` from there) and
  its `kept/` folder as the data volume `station-events`, the explorer's collection of the kept windows
  (dated by their events: the station-event harvester);
- a new-data trigger on the `event-recorder` system pipeline watching `volume:station-<STATION>/lowfi`
  (`*_lowfi.csv`, one run per file) with `hifi_dir` = `volume:station-<STATION>/hifi`.

Then the station writes (`demo/station.py`) and, after each chunk, does its retention (`Follower.step`):

- the recorder's runs that trigger started are listed through the API; the windows the succeeded ones kept
  are downloaded into `kept/` (a station-event name, a NetCDF-4 file of bounded size, written atomically
  under that name only: what a run output cannot be is left out and said);
- a high-fidelity chunk older than the retention is deleted only once the runs of its low-fi chunk and of
  its neighbours (an event's window, +-margin <= 60 s, may reach into the next or previous minute) have
  ended: the retention never deletes what a run still reads (or has yet to read);
- when windows were kept, a harvest of `station-events` is asked for, so the explorer shows them.

Retention is the station's duty, not a pipeline's: pipelines read data volumes read-only, and only the
station, which writes the folder, deletes from it (as an edge recorder's ring buffer does).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from datalabs.client import ApiError, Client
from datalabs.demo import retention as ret
from datalabs.demo import station as st
from datalabs.errors import Invalid

PIPELINE = "event-recorder"
EVENTS_VOLUME = "station-events"
ENDED = ("succeeded", "failed", "cancelled")
REACH = 1  # chunks on each side whose events' windows may reach into a chunk (margin <= 60 s)
PAGE = 500


@dataclass(frozen=True)
class Edge:
    station: str
    out: Path
    volume: str
    trigger: int


def volume_name(station: str) -> str:
    return f"station-{station}"


def setup(client: Client, out: Path, station: str, margin: float = 10.0) -> tuple[Edge, list[str]]:
    """The volumes and the trigger (made, or found as made before); (the edge, lines saying what)."""
    if not st.STATION_NAME.match(station):
        raise Invalid("--station: 3 to 12 capital letters or digits, e.g. DEMO01", code="bad_station")
    if not 0 < margin <= st.CHUNK_SECONDS:
        raise Invalid(f"--margin: seconds, more than 0 and at most {st.CHUNK_SECONDS}", code="bad_option")
    top = st.open_folder(out, create=True)
    try:  # the station's folders, so that the volumes and the trigger's folders exist before it writes
        for sub in (st.LOWFI, st.HIFI, st.KEPT):
            os.close(st.subfolder(top, sub))
    finally:
        os.close(top)
    root = Path(out).expanduser().resolve()
    name = volume_name(station)
    lines = [
        _volume(client, name, root, f"Station {station}: 1 Hz power (lowfi/), 100 Hz samples (hifi/)"),
        _volume(client, EVENTS_VOLUME, root / st.KEPT, "High-fidelity windows kept around station events"),
    ]
    watch = f"volume:{name}/{st.LOWFI}"
    found = [
        t for t in client.get(f"/api/v1/pipelines/{PIPELINE}/triggers")
        if t["kind"] == "new_data" and t["config"].get("watch") == watch
    ]  # fmt: skip
    if found:
        trigger = found[0]
        if trigger["paused"]:
            client.request("PATCH", f"/api/v1/triggers/{trigger['id']}", json={"paused": False})
        lines.append(
            f"trigger {trigger['id']} on {PIPELINE} (there already{', resumed' if trigger['paused'] else ''})"
        )
    else:
        body = {
            "kind": "new_data",
            "name": f"edge {station}",
            "config": {"watch": watch, "pattern": "*_lowfi.csv", "input": "lowfi", "mode": "per_file"},
            "inputs": {"hifi_dir": f"volume:{name}/{st.HIFI}", "margin": margin},
        }
        trigger = client.post(f"/api/v1/pipelines/{PIPELINE}/triggers", body)
        lines.append(f"trigger {trigger['id']} on {PIPELINE} (made)")
    lines[-1] += f": each new {watch}/*_lowfi.csv starts one run, with hifi_dir volume:{name}/{st.HIFI}"
    return Edge(station, root, name, int(trigger["id"])), lines


def _volume(client: Client, name: str, path: Path, description: str) -> str:
    try:
        there = client.get(f"/api/v1/volumes/{name}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        client.post("/api/v1/volumes", {"name": name, "host_path": str(path), "description": description})
        return f"data volume {name} = {path} (made)"
    if there.get("host_path") and Path(there["host_path"]) != path:
        raise Invalid(
            f"the data volume {name} is {there['host_path']}, not {path}: use that folder as --out, or "
            f"`datalabs volumes rm {name}` first",
            code="volume_elsewhere",
        )
    return f"data volume {name} = {path} (there already)"


def watch_here(base: str) -> list[str]:
    return [
        f"the trigger and its events: {base}/pipelines/{PIPELINE}#triggers",
        f"the recorder's runs:        {base}/runs",
        f"the kept windows:           {base}/explorer?collection={EVENTS_VOLUME}",
    ]


@dataclass
class Step:
    """One pass of the station's retention."""

    ended: set[str] = field(default_factory=set)  # low-fi chunk names whose run has ended
    kept: list[str] = field(default_factory=list)  # windows newly put into kept/
    refused: list[str] = field(default_factory=list)  # run outputs not taken, with why
    report: ret.Report = field(default_factory=ret.Report)
    harvest: str = ""  # asked | busy (asked again later) | ""
    unreachable: str = ""  # the platform did not answer: nothing was deleted


class Follower:
    """The station's retention, following the trigger's runs through the API."""

    def __init__(self, client: Client, edge: Edge, retention: float) -> None:
        if retention < 0:
            raise Invalid("--retention must not be negative", code="bad_option")
        self.client, self.edge, self.retention = client, edge, retention
        self.taken: set[str] = set()  # runs whose windows are in kept/
        self.to_index = False  # windows kept since the last harvest was asked for

    def step(self, final: bool = False) -> Step:
        """Keep the ended runs' windows, age out what the recorder is done with, ask for a harvest.
        `final`: the station has stopped writing (a missing next chunk will not come)."""
        step = Step()
        try:
            runs = self._runs()
        except ApiError as exc:
            step.unreachable = exc.message
            return step
        for run in runs:
            lowfi = _lowfi_name(run.get("inputs", {}).get("lowfi"))
            if run["state"] in ENDED and lowfi:
                step.ended.add(lowfi)
            if run["state"] == "succeeded" and run["id"] not in self.taken:
                try:
                    self._take(run, step)
                except ApiError as exc:
                    step.unreachable = exc.message
                    return step  # taken again next pass; nothing aged out meanwhile
                self.taken.add(run["id"])
        ret.age_out(self.edge.out, self.retention, step.report, self._may_go(step.ended, final))
        if step.kept:
            self.to_index = True
        if self.to_index:
            step.harvest = self._harvest()
        return step

    def _runs(self) -> list[dict]:
        found, offset = [], 0
        while True:
            page = self.client.get("/api/v1/runs", pipeline=PIPELINE, limit=PAGE, offset=offset)
            found += [r for r in page if (r.get("triggered_by") or {}).get("trigger") == self.edge.trigger]
            if len(page) < PAGE:
                return found
            offset += PAGE

    def _take(self, run: dict, step: Step) -> None:
        kept = (run.get("outputs") or {}).get("kept") or []
        top = st.open_folder(self.edge.out, create=False)
        try:
            kept_fd = st.subfolder(top, st.KEPT)
            try:
                for item in kept if isinstance(kept, list) else []:
                    location = item.get("location", "") if isinstance(item, dict) else ""
                    name = location.rsplit("/", 1)[-1]
                    if ret.st_exists(kept_fd, name) and ret.KEPT_NAME.match(name):
                        continue
                    why = take_window(kept_fd, name, lambda loc=location: self.client.download(loc))
                    if why:
                        step.refused.append(f"run {run['id']}: {location}: {why}")
                    else:
                        step.kept.append(name)
            finally:
                os.close(kept_fd)
        finally:
            os.close(top)

    def _may_go(self, ended: set[str], final: bool) -> Callable[[datetime], bool]:
        top = st.open_folder(self.edge.out, create=False)
        try:
            fd = st.subfolder(top, st.LOWFI, create=False)
            try:
                written = set(os.listdir(fd))
            finally:
                os.close(fd)
        finally:
            os.close(top)

        def may_go(start: datetime) -> bool:
            for k in range(-REACH, REACH + 1):
                name = st.chunk_name(
                    self.edge.station, start + timedelta(seconds=k * st.CHUNK_SECONDS), st.LOWFI
                )
                if name in written:
                    if name not in ended:
                        return False  # its run has not ended (or not started): it may read this chunk
                elif k >= 0 and not final:
                    return False  # not written yet: its run will need this chunk
            return True

        return may_go

    def _harvest(self) -> str:
        try:
            self.client.post(f"/api/v1/volumes/{EVENTS_VOLUME}/harvest")
        except ApiError as exc:
            if exc.status in (409, 503):  # one is running, or this replica does not index: ask again
                return "busy"
            raise
        self.to_index = False
        return "asked"

    def indexed(self, timeout: float = 120.0, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Wait until no harvest of the kept windows is running or owed; False if one is at `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.client.get(f"/api/v1/volumes/{EVENTS_VOLUME}/harvest")
            if not status.get("active"):
                if not self.to_index:
                    return True
                self._harvest()
            sleep(0.2)
        return False


def take_window(kept_fd: int, name: str, fetch: Callable[[], bytes]) -> str:
    """Put a run's window `name` into kept/ (the fd); '' when done, else why not (nothing written)."""
    if not ret.KEPT_NAME.match(name):
        return "not a station event window's name (<STATION>_<time>Z_event.nc)"
    data = fetch()
    if len(data) > ret.MAX_KEPT_BYTES or not data.startswith(ret.NETCDF4_MAGIC):
        return f"not a NetCDF-4 file of at most {ret.MAX_KEPT_BYTES} bytes"
    st.write_atomic(
        kept_fd, name, data
    )  # renamed over the name itself: a link there is replaced, not followed
    return ""


def _lowfi_name(value) -> str:
    """The file name of a run's `lowfi` input (a reference, or a CWL File object)."""
    if isinstance(value, dict):
        value = value.get("location") or value.get("path") or ""
    return value.rsplit("/", 1)[-1] if isinstance(value, str) else ""
