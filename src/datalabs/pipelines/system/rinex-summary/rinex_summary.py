"""Quality summary of a RINEX observation file: header facts, epochs present vs expected, satellites."""

import json
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import hatanaka

SYSTEMS = {"G": "GPS", "R": "GLONASS", "E": "Galileo", "C": "BeiDou", "J": "QZSS", "I": "NavIC", "S": "SBAS"}


def header_value(line):
    return line[:60].strip()


def epoch_v3(line):
    f = line[1:].split()
    sec = float(f[5])
    return datetime(int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4])) + timedelta(seconds=sec), int(f[7])


def main(path):
    text = hatanaka.decompress(Path(path).read_bytes()).decode("ascii", errors="replace")
    lines = text.splitlines()
    info, obs_types, end = {"file": Path(path).name}, {}, 0
    for end, line in enumerate(lines):  # noqa: B007 (`end` is the header's last line, used below)
        label = line[60:].strip()
        if label == "RINEX VERSION / TYPE":
            info["rinex_version"] = line[:9].strip()
            if line[20:21] != "O":
                sys.exit(f"{Path(path).name} is not an observation file (type '{line[20:21]}')")
        elif label == "MARKER NAME":
            info["station"] = header_value(line)
        elif label == "REC # / TYPE / VERS":
            info["receiver"] = line[20:40].strip()
        elif label == "ANT # / TYPE":
            info["antenna"] = line[20:40].strip()
        elif label == "INTERVAL":
            info["interval_s"] = float(line[:10])
        elif label == "SYS / # / OBS TYPES" and line[0] != " ":
            obs_types[SYSTEMS.get(line[0], line[0])] = line[7:58].split()
        elif label == "END OF HEADER":
            break
    else:
        sys.exit(f"{Path(path).name}: no 'END OF HEADER' line: not a RINEX file or truncated")
    if not info.get("station"):  # no MARKER NAME: the file name says it (RINEX 3 long or 2 short names)
        name = Path(path).name
        info["station"] = name[:9] if len(name) > 12 and name[9] == "_" else name[:4]
    if not info.get("rinex_version", "").startswith(("3", "4")):
        sys.exit(f"RINEX {info.get('rinex_version', '?')} is read as header only; use RINEX 3 or 4")
    epochs, sats = [], Counter()
    body = lines[end + 1 :]
    for n, line in enumerate(body):
        if line.startswith(">"):
            when, count = epoch_v3(line)
            epochs.append(when)
            for sat_line in body[n + 1 : n + 1 + count]:
                sats[sat_line[:3]] += 1
    if not epochs:
        sys.exit("no observation epochs found")
    interval = info.get("interval_s") or (
        min((b - a).total_seconds() for a, b in zip(epochs, epochs[1:], strict=False))
        if len(epochs) > 1
        else 30.0
    )
    expected = int((epochs[-1] - epochs[0]).total_seconds() / interval) + 1
    info.update(
        first_epoch=epochs[0].isoformat(),
        last_epoch=epochs[-1].isoformat(),
        epochs=len(epochs),
        expected_epochs=expected,
        completeness_pct=round(100.0 * len(set(epochs)) / expected, 2),
        satellites=len(sats),
        satellites_per_system=dict(Counter(SYSTEMS.get(s[0], s[0]) for s in sats)),
        observation_types=obs_types,
    )
    Path("summary.json").write_text(json.dumps(info, indent=2) + "\n")
    Path("summary.txt").write_text("\n".join(f"{k:>22}: {v}" for k, v in info.items()) + "\n")
    print(Path("summary.txt").read_text())


if __name__ == "__main__":
    main(sys.argv[1])
