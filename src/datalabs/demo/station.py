"""A synthetic station (issue 18, the edge demo): a cheap continuous stream beside the expensive data.

The station folder holds, per simulated minute:

    lowfi/<STATION>_<YYYYMMDD>T<HHMM>_lowfi.csv   1 Hz IF power in dBm (about 2 kB)
    hifi/<STATION>_<YYYYMMDD>T<HHMM>_hifi.nc      100 Hz IF samples, NetCDF-4 (about 100 kB)

and `kept/`, where the retention step (`retention.py`) puts the high-fidelity windows the event
recorder kept. The low-fi power is the high-fi samples' power averaged over each second, so an event
seen in the cheap stream is in the expensive one. Events are Gaussian bursts of +8 to +12 dB, a few
seconds wide, placed 15-45 s into distinct minutes (never across a chunk's edge), chosen by the seed.

Every file is written under a hidden temporary name in its own folder and renamed into place, so a
watcher (a trigger's scan, inotify) never sees half a file; the folders are opened without following
links, so a link planted in the station folder cannot send the station's writes elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from datalabs.errors import Invalid
from datalabs.workspaces import paths

LOWFI, HIFI, KEPT = "lowfi", "hifi", "kept"
HIFI_RATE = 100  # samples per second
CHUNK_SECONDS = 60
NAME_TIME = "%Y%m%dT%H%M"
STATION_NAME = re.compile(r"^[A-Z0-9]{3,12}$")
CHUNK_NAME = re.compile(r"^(?P<station>[A-Z0-9]{3,12})_(?P<time>\d{8}T\d{4})_(?P<kind>lowfi|hifi)\.(csv|nc)$")
BASE_DBM = -90.0
BURST_SIGMA_S = 1.5


@dataclass(frozen=True)
class Event:
    """An injected event: the minute it falls in, its peak time and its height above the floor (dB)."""

    minute: int
    time: datetime
    gain_db: float


def chunk_name(station: str, start: datetime, kind: str) -> str:
    return f"{station}_{start.strftime(NAME_TIME)}_{kind}.{'csv' if kind == LOWFI else 'nc'}"


def chunk_time(name: str) -> datetime | None:
    """The start of the chunk a station file name gives, None for any other name."""
    m = CHUNK_NAME.match(name)
    return datetime.strptime(m["time"], NAME_TIME).replace(tzinfo=UTC) if m else None


def plan_events(seed: int, minutes: int, count: int, start: datetime, cycle: int = 0) -> list[Event]:
    """`count` events in distinct minutes of `minutes` (the `cycle`-th such period, for live runs)."""
    if count > minutes:
        raise Invalid(f"{count} events do not fit in {minutes} minutes (one per minute at most)")
    rng = np.random.default_rng([seed, cycle, 1])
    chosen = sorted(int(m) for m in rng.choice(minutes, size=count, replace=False))
    events = []
    for m in chosen:
        minute = cycle * minutes + m
        offset = float(rng.uniform(15, 45))
        peak = start + timedelta(minutes=minute, seconds=round(offset, 2))
        events.append(Event(minute, peak, round(float(rng.uniform(8, 12)), 2)))
    return events


def simulate(seed: int, start: datetime, minute: int, events: list[Event]) -> tuple[np.ndarray, np.ndarray]:
    """(1 Hz power in dBm, 100 Hz samples) of one minute: receiver noise whose power drifts slowly, plus
    the bursts of the events in that minute."""
    rng = np.random.default_rng([seed, minute, 2])
    t = np.arange(CHUNK_SECONDS * HIFI_RATE) / HIFI_RATE
    seconds_since_start = minute * CHUNK_SECONDS + t
    power_db = BASE_DBM + 0.5 * np.sin(2 * np.pi * seconds_since_start / 1800.0)
    chunk_start = start + timedelta(minutes=minute)
    for event in events:
        if event.minute == minute:
            at = (event.time - chunk_start).total_seconds()
            power_db = power_db + event.gain_db * np.exp(-0.5 * ((t - at) / BURST_SIGMA_S) ** 2)
    samples = np.sqrt(10 ** (power_db / 10)) * rng.standard_normal(t.size)
    per_second = (samples.astype(np.float64) ** 2).reshape(CHUNK_SECONDS, HIFI_RATE).mean(axis=1)
    return 10 * np.log10(per_second), samples.astype(np.float32)


def lowfi_text(station: str, chunk_start: datetime, power: np.ndarray) -> bytes:
    lines = [f"# station: {station}", "# rate_hz: 1", "# units: dBm", "time,power_dbm"]
    for i, value in enumerate(power):
        when = chunk_start + timedelta(seconds=i)
        lines.append(f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')},{value:.3f}")
    return ("\n".join(lines) + "\n").encode()


def hifi_bytes(station: str, chunk_start: datetime, samples: np.ndarray) -> bytes:
    """The samples as a NetCDF-4 file built in memory (written by the caller, atomically)."""
    import netCDF4

    ds = netCDF4.Dataset("hifi.nc", "w", memory=len(samples) * 16, format="NETCDF4")
    ds.createDimension("time", len(samples))
    when = ds.createVariable("time", "f8", ("time",))
    when.units = f"seconds since {chunk_start.strftime('%Y-%m-%d %H:%M:%S')}"
    when.standard_name = "time"
    when[:] = np.arange(len(samples)) / HIFI_RATE
    amp = ds.createVariable("amplitude", "f4", ("time",), zlib=False)
    amp.units = "sqrt(mW)"
    amp.long_name = "IF samples"
    amp[:] = samples
    end = chunk_start + timedelta(seconds=len(samples) / HIFI_RATE)
    ds.setncatts(
        {
            "title": f"{station} high-fidelity IF samples",
            "station": station,
            "platform": station,
            "sample_rate_hz": HIFI_RATE,
            "time_coverage_start": chunk_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "time_coverage_end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Conventions": "CF-1.8, ACDD-1.3",
        }
    )
    return bytes(ds.close())


def write_atomic(dir_fd: int, name: str, data: bytes) -> None:
    """`data` as `name` in the folder `dir_fd`: written whole under a hidden temporary name, then renamed
    (the name either does not exist or is complete). Never writes through a link."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"  # hidden from harvests; not guessable, so not plantable
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
    )
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def open_folder(out: Path, create: bool) -> int:
    """An fd of the station folder (the operator's path, links in it resolved once); Invalid with what
    to do when it cannot be one."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise Invalid(f"--out {out} is not a folder", code="bad_out")
    if not out.exists():
        if not create:
            raise Invalid(f"--out {out} does not exist", code="bad_out")
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise Invalid(f"--out {out} cannot be made: {exc.strerror}", code="bad_out") from None
    try:
        return os.open(out.resolve(), paths.DIR_FLAGS)
    except OSError as exc:
        raise Invalid(f"--out {out} cannot be opened: {exc.strerror}", code="bad_out") from None


def subfolder(top_fd: int, name: str, create: bool = True) -> int:
    """An fd of the station's sub-folder `name`, made if missing; Invalid if it is a link or not a folder."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=top_fd)
    try:
        return os.open(name, paths.DIR_FLAGS, dir_fd=top_fd)
    except OSError as exc:
        raise Invalid(
            f"'{name}' in the station folder is not a folder (a link or a file?): {exc.strerror}",
            code="bad_out",
        ) from None


def check_writable(top_fd: int, out: Path) -> None:
    if not os.access(f"/proc/self/fd/{top_fd}", os.W_OK):
        raise Invalid(f"--out {out} is not writable", code="bad_out")


@dataclass(frozen=True)
class Chunk:
    minute: int
    start: datetime
    lowfi: str
    hifi: str


def run(
    out: Path,
    *,
    station: str = "DEMO01",
    start: datetime,
    minutes: int = 30,
    events: int = 3,
    seed: int = 0,
    speed: float = 0,
    live: bool = False,
    on_chunk: Callable[[Chunk], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Event]:
    """Write `minutes` chunks (forever with `live`: the events repeat every `minutes`, each period with its
    own draw) into `out`, one every 60/`speed` seconds (0: as fast as possible). Returns the events
    injected into what was written."""
    if not STATION_NAME.match(station):
        raise Invalid("--station: 3 to 12 capital letters or digits, e.g. DEMO01", code="bad_station")
    if minutes < 1 or events < 0 or speed < 0:
        raise Invalid("--minutes must be at least 1, --events and --speed not negative", code="bad_option")
    plan_events(seed, minutes, events, start)  # refuses what cannot be, before anything is made
    start = start.astimezone(UTC).replace(second=0, microsecond=0)
    top = open_folder(out, create=True)
    try:
        check_writable(top, out)
        lowfi_fd, hifi_fd = subfolder(top, LOWFI), subfolder(top, HIFI)
        os.close(subfolder(top, KEPT))
        try:
            return _write(
                lowfi_fd, hifi_fd, station, start, minutes, events, seed, speed, live, on_chunk, sleep
            )
        finally:
            os.close(lowfi_fd)
            os.close(hifi_fd)
    finally:
        os.close(top)


def _minutes(minutes: int, live: bool) -> Iterator[int]:
    minute = 0
    while live or minute < minutes:
        yield minute
        minute += 1


def _write(lowfi_fd, hifi_fd, station, start, minutes, count, seed, speed, live, on_chunk, sleep):
    injected: list[Event] = []
    for minute in _minutes(minutes, live):
        began = time.monotonic()
        if minute % minutes == 0:  # a new period (live runs go on): its own draw of events
            plan = plan_events(seed, minutes, count, start, minute // minutes)
        power, samples = simulate(seed, start, minute, plan)
        chunk_start = start + timedelta(minutes=minute)
        chunk = Chunk(
            minute,
            chunk_start,
            chunk_name(station, chunk_start, LOWFI),
            chunk_name(station, chunk_start, HIFI),
        )
        # The high-fidelity chunk first: once the low-fi chunk (what a trigger watches) exists, its
        # high-fidelity data is there to be cut.
        write_atomic(hifi_fd, chunk.hifi, hifi_bytes(station, chunk_start, samples))
        write_atomic(lowfi_fd, chunk.lowfi, lowfi_text(station, chunk_start, power))
        injected += [e for e in plan if e.minute == minute]
        if on_chunk:
            on_chunk(chunk)
        if speed > 0:
            sleep(max(0.0, CHUNK_SECONDS / speed - (time.monotonic() - began)))
    return injected
