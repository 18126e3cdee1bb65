"""Event recorder: find events in one low-fidelity power chunk, keep the high-fidelity window around each.

Detector: a robust z-score of each power sample against the median and the median absolute deviation of
a rolling window centred on it (edges padded with the nearest values); consecutive samples above the
threshold (gaps of up to 2 s bridged) are one event, dated by its highest sample. An event is kept as
<STATION>_<YYYYMMDDTHHMMSSff>Z_event.nc: the high-fidelity samples within +-margin seconds of the peak,
cut from the chunks given (--hifi) and those of the station's high-fidelity folder (--hifi-dir) whose
minute overlaps the window, with the event's metadata as attributes. events.json lists every event found
(an empty list when there is none), with the kept file's name or why nothing could be kept.
"""

import argparse
import csv
import io
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np

CHUNK_NAME = re.compile(r"^(?P<station>[A-Z0-9]{3,12})_(?P<time>\d{8}T\d{4})_hifi\.nc$")
CHUNK_S = 60
MAX_LOWFI_BYTES = 8 * 2**20
MAX_ROWS = 100_000
GAP_S = 2.0


def fail(message):
    sys.exit(f"event-recorder: {message}")


def read_lowfi(path):
    """(station, times, power) of a station's CSV chunk; exits with the reason on anything else."""
    raw = Path(path).read_bytes()[: MAX_LOWFI_BYTES + 1]
    if len(raw) > MAX_LOWFI_BYTES:
        fail(f"{Path(path).name} is larger than {MAX_LOWFI_BYTES} bytes: not a low-fidelity chunk")
    text = raw.decode("utf-8", errors="replace")
    station, rows, line_no = None, [], 0
    try:
        for line_no, row in enumerate(csv.reader(io.StringIO(text)), 1):
            station = _row(line_no, row, rows, station)
    except csv.Error as exc:
        fail(f"line {line_no + 1}: not CSV ({exc})")
    if not rows:
        fail(f"{Path(path).name} has no power samples")
    if not station or not station.isalnum() or len(station) > 12:
        station = Path(path).name.split("_", 1)[0]
        if not station.isalnum() or len(station) > 12:
            station = "UNKNOWN"
    times = [r[0] for r in rows]
    power = np.array([r[1] for r in rows], dtype=float)
    if not np.all(np.isfinite(power)):
        fail("the power column holds values that are not numbers")
    return station, times, power


def _row(line_no, row, rows, station):
    """One CSV row read into `rows`; returns the station (changed if the row names it)."""
    if not row or row == ["time", "power_dbm"]:
        return station
    if row[0].startswith("#"):
        key, _, value = row[0][1:].partition(":")
        return value.strip() if key.strip() == "station" else station
    if len(rows) >= MAX_ROWS:
        fail(f"more than {MAX_ROWS} rows")
    try:
        when = datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        rows.append((when, float(row[1])))
    except (ValueError, IndexError):
        fail(f"line {line_no}: expected 'YYYY-MM-DDTHH:MM:SSZ,<power dBm>', got {','.join(row)[:80]!r}")
    return station


def robust_z(power, window):
    half = max(1, window // 2)
    padded = np.pad(power, half, mode="edge")
    views = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    median = np.median(views, axis=1)
    mad = np.median(np.abs(views - median[:, None]), axis=1) * 1.4826
    floor = max(float(np.median(mad)), 1e-6)  # one flat window must not make every wiggle an event
    return (power - median) / np.maximum(mad, floor)


def detect(times, power, threshold, window):
    z = robust_z(power, window)
    above = np.flatnonzero(z > threshold)
    groups, current = [], []
    for i in above:
        if current and (times[i] - times[current[-1]]).total_seconds() > GAP_S:
            groups.append(current)
            current = []
        current.append(int(i))
    if current:
        groups.append(current)
    events = []
    for group in groups:
        peak = max(group, key=lambda i: power[i])
        events.append(
            {
                "time": times[peak],
                "peak_power_dbm": round(float(power[peak]), 3),
                "peak_z": round(float(z[peak]), 2),
                "start": times[group[0]],
                "end": times[group[-1]],
            }
        )
    return events


def chunks_in(folder, station, events, margin):
    """The high-fidelity chunks of `folder` (a station's hifi/ folder) that the events' windows need,
    chosen by the time in their names (<STATION>_<YYYYMMDD>T<HHMM>_hifi.nc, one minute each)."""
    wanted = set()
    for event in events:
        first = event["time"] - timedelta(seconds=margin + CHUNK_S)
        last = event["time"] + timedelta(seconds=margin)
        with os.scandir(folder) as entries:
            for entry in entries:
                m = CHUNK_NAME.match(entry.name)
                if not m or m["station"] != station or not entry.is_file(follow_symlinks=False):
                    continue
                start = datetime.strptime(m["time"], "%Y%m%dT%H%M").replace(tzinfo=UTC)
                if first < start <= last:
                    wanted.add(entry.path)
    return sorted(wanted)


def read_hifi(paths):
    """[(start, rate, samples, name)] of the high-fidelity chunks, by start time."""
    chunks = []
    for path in paths:
        try:
            with netCDF4.Dataset(path) as ds:
                var = ds.variables["time"]
                start = netCDF4.num2date(0.0, var.units, only_use_cftime_datetimes=False)
                rate = float(ds.getncattr("sample_rate_hz"))
                samples = np.asarray(ds.variables["amplitude"][:], dtype=np.float32)
        except (OSError, KeyError, AttributeError, ValueError) as exc:
            fail(f"{Path(path).name} is not a high-fidelity chunk (NetCDF with time, amplitude): {exc}")
        chunks.append((start.replace(tzinfo=UTC), rate, samples, Path(path).name))
    return sorted(chunks, key=lambda c: c[0])


def cut(chunks, begin, end):
    """(times in seconds since `begin`, samples, source names) of the samples in [begin, end)."""
    times, values, sources = [], [], []
    for start, rate, samples, name in chunks:
        offsets = (start - begin).total_seconds() + np.arange(len(samples)) / rate
        inside = (offsets >= 0) & (offsets < (end - begin).total_seconds())
        if inside.any():
            times.append(offsets[inside])
            values.append(samples[inside])
            sources.append(name)
    if not times:
        return None, None, []
    order = np.argsort(np.concatenate(times), kind="stable")
    return np.concatenate(times)[order], np.concatenate(values)[order], sources


def iso(when):
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_window(event, station, lowfi_name, times, samples, sources, begin, end, margin):
    peak = event["time"]
    name = f"{station}_{peak.strftime('%Y%m%dT%H%M%S')}{peak.microsecond // 10000:02d}Z_event.nc"
    with netCDF4.Dataset(name, "w", format="NETCDF4") as ds:
        ds.createDimension("time", len(samples))
        var = ds.createVariable("time", "f8", ("time",))
        var.units = f"seconds since {begin.strftime('%Y-%m-%d %H:%M:%S')}"
        var.standard_name = "time"
        var[:] = times
        amp = ds.createVariable("amplitude", "f4", ("time",))
        amp.long_name = "IF samples"
        amp[:] = samples
        ds.setncatts(
            {
                "title": f"{station} event at {peak.strftime('%Y-%m-%d %H:%M:%S')} UTC",
                "product": "station-event",
                "station": station,
                "platform": station,
                "event_time": iso(peak),
                "peak_power_dbm": event["peak_power_dbm"],
                "peak_z": event["peak_z"],
                "margin_s": margin,
                "time_coverage_start": iso(begin),
                "time_coverage_end": iso(end),
                "lowfi_chunk": lowfi_name,
                "source_chunks": ",".join(sources),
                "Conventions": "CF-1.8, ACDD-1.3",
            }
        )
    return name


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--lowfi", required=True)
    parser.add_argument("--hifi", nargs="*", default=[])
    parser.add_argument("--hifi-dir")
    parser.add_argument("--margin", type=float, default=10.0)
    parser.add_argument("--threshold", type=float, default=6.0)
    parser.add_argument("--window", type=int, default=61)
    args = parser.parse_args(argv)
    if not 0 < args.margin <= 3600 or args.threshold <= 0 or not 3 <= args.window <= 10_000:
        fail("margin must be in (0, 3600] s, threshold positive, window 3 to 10000 samples")
    station, times, power = read_lowfi(args.lowfi)
    found = detect(times, power, args.threshold, args.window)
    given = list(args.hifi)
    if args.hifi_dir and found:
        given += [p for p in chunks_in(args.hifi_dir, station, found, args.margin) if p not in given]
    chunks = read_hifi(given)
    listed = []
    for event in found:
        begin = event["time"] - timedelta(seconds=args.margin)
        end = event["time"] + timedelta(seconds=args.margin)
        cut_times, samples, sources = cut(chunks, begin, end)
        entry = {
            "station": station,
            "time": iso(event["time"]),
            "peak_power_dbm": event["peak_power_dbm"],
            "peak_z": event["peak_z"],
            "window": [iso(begin), iso(end)],
        }
        if samples is None:
            entry["kept"] = None
            entry["reason"] = "no high-fidelity samples cover the window (not given, or aged out)"
        else:
            entry["kept"] = write_window(
                event, station, Path(args.lowfi).name, cut_times, samples, sources, begin, end, args.margin
            )
            entry["coverage"] = round(len(samples) / (2 * args.margin * chunks[0][1]), 3)
        listed.append(entry)
    Path("events.json").write_text(
        json.dumps({"lowfi": Path(args.lowfi).name, "events": listed}, indent=2) + "\n"
    )
    print(f"{len(listed)} event(s) in {Path(args.lowfi).name}; kept: {[e['kept'] for e in listed]}")


if __name__ == "__main__":
    main()
