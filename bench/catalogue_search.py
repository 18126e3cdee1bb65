"""Catalogue search API with 1,000 datalab definitions under 200 concurrent clients, beside /healthz.

A real `datalabs serve` (SQLite in a temporary DATALABS_HOME) loads 1,000 generated definitions; wrk
drives /healthz (the floor: routing, middleware and JSON with no auth, DB or catalogue work), /api/v1/me
(token authentication alone) and three catalogue searches, all with a bearer token. Reports req/s,
p50/p99, server CPU per request and the ratios to /healthz; errors and stalls are reported loudly.

    .venv/bin/python -m bench.catalogue_search [--seconds 10] [--connections 200]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from bench.common import (
    RESULTS,
    ROOT,
    Server,
    WrkResult,
    clean_env,
    datalabs,
    machine,
    revision,
    serve,
    write_section,
    wrk,
)

SECTION = "catalogue-search"
DEFINITIONS = 1000
TEAMS = ["astro-team", "gnss-team", "planetary-team", "euclid-consortium", "helio-team"]
TARGETS = {
    "/healthz (floor)": "/healthz",
    "token auth only": "/api/v1/me",
    "q=gaia": "/api/v1/datalabs?q=gaia&limit=20",
    "kind=desktop, mission=Planck": "/api/v1/datalabs?kind=desktop&mission=Planck&limit=20",
    "no filter": "/api/v1/datalabs?limit=20",
}

# ---- 1,000 realistic definitions -------------------------------------------------------------------

# mission: (domain, instruments, mission-specific keywords)
MISSIONS = {
    "Gaia": ("Astronomy", ["Astrometric Field", "BP/RP", "RVS"], ["astrometry", "parallax", "proper motion",
             "photometry", "milky way", "xp spectra", "stellar populations"]),
    "Planck": ("Astronomy", ["LFI", "HFI"], ["cmb", "cosmology", "healpix", "foregrounds", "polarisation",
               "power spectrum", "sky maps"]),
    "JWST": ("Astronomy", ["NIRCam", "NIRSpec", "MIRI", "NIRISS"], ["infrared", "spectroscopy", "ifu",
             "exoplanets", "high redshift", "imaging"]),
    "XMM-Newton": ("Astronomy", ["EPIC-pn", "EPIC-MOS", "RGS", "OM"], ["x-ray", "event files", "sas",
                   "spectral fitting", "light curves", "xspec"]),
    "Euclid": ("Astronomy", ["VIS", "NISP"], ["weak lensing", "galaxy clustering", "photometric redshift",
               "dark energy", "survey", "mosaics"]),
    "Herschel": ("Astronomy", ["PACS", "SPIRE", "HIFI"], ["far-infrared", "submillimetre", "dust",
                 "star formation", "hipe", "spectral cubes"]),
    "INTEGRAL": ("Astronomy", ["SPI", "IBIS", "JEM-X", "OMC"], ["gamma-ray", "hard x-ray", "osa",
                 "transients", "mosaics"]),
    "Hubble": ("Astronomy", ["WFC3", "ACS", "COS", "STIS"], ["ultraviolet", "optical", "drizzle",
               "imaging", "spectroscopy", "photometry"]),
    "Rosetta": ("Planetary Science", ["OSIRIS", "VIRTIS", "ROSINA", "MIRO"], ["comet", "67p", "coma",
                "shape model", "pds4", "nucleus"]),
    "Mars Express": ("Planetary Science", ["HRSC", "OMEGA", "MARSIS", "SPICAM"], ["mars", "dtm",
                     "mineralogy", "radar sounding", "atmosphere", "pds4"]),
    "BepiColombo": ("Planetary Science", ["MERTIS", "MPO-MAG", "SIXS", "BELA"], ["mercury", "spice",
                    "magnetosphere", "cruise phase", "orbit"]),
    "Solar Orbiter": ("Heliophysics", ["EUI", "PHI", "STIX", "SWA", "MAG"], ["sun", "solar wind", "corona",
                      "flares", "sunpy", "in situ"]),
    "SOHO": ("Heliophysics", ["LASCO", "EIT", "MDI", "CELIAS"], ["coronagraph", "cme", "helioseismology",
             "sunpy", "solar cycle"]),
    "Sentinel-2": ("Earth Observation", ["MSI"], ["land cover", "ndvi", "optical", "time series",
                   "cloud mask", "cog"]),
    "GNSS": ("Navigation/GNSS", ["GPS", "Galileo", "GLONASS", "BeiDou"], ["rinex", "crinex", "igs",
             "positioning", "ionosphere", "troposphere", "precise orbits"]),
}  # fmt: skip
GENERIC_KEYWORDS = ["python", "jupyter", "notebooks", "visualisation", "fits", "votable", "tap", "adql",
                    "machine learning", "time series", "catalogues", "cross-match", "statistics", "plotting",
                    "data reduction", "calibration", "archive", "samp", "dask", "xarray"]  # fmt: skip
# (kind, what it is, executable); web labs run a Jupyter-style server on {socket} at {base_url}
TOOLS = [
    ("web", "notebooks", "jupyter-lab"),
    ("web", "analysis notebooks", "jupyter-lab"),
    ("web", "dashboard", "panel"),
    ("web", "Voila apps", "voila"),
    ("desktop", "viewer", "ds9"),
    ("desktop", "explorer", "topcat"),
    ("desktop", "data reduction GUI", "xterm"),
    ("desktop", "analysis suite", "octave"),
]
LICENCES = ["Apache-2.0", "MIT", "BSD-3-Clause", "GPL-3.0-or-later", "LGPL-2.1-or-later"]
CREATORS = ["ESAC Science Data Centre", "ESA Datalabs team", "Instrument Science Team", "Community"]


def slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def definition(i: int, rng: random.Random) -> dict:
    """One datalab-meta.yml as a dict, shaped like the built-in ones."""
    mission = rng.choice(list(MISSIONS))
    domain, instruments, mission_keywords = MISSIONS[mission]
    instrument = rng.choice(instruments)
    kind, noun, executable = rng.choice(TOOLS)
    keywords = rng.sample(mission_keywords, 3) + rng.sample(GENERIC_KEYWORDS, rng.randint(2, 5))
    other = rng.choice([m for m in MISSIONS if m != mission])  # some labs mention a second mission
    cross = f" Cross-match results with {other} archive products." if rng.random() < 0.15 else ""
    title = f"{mission} {instrument} {noun}"
    runtime: dict = {"kind": kind, "requires": [executable], "environment": "platform"}
    if kind == "web":
        runtime["command"] = [executable, "--no-browser", "--sock={socket}", "--base-url={base_url}"]
        runtime["python_packages"] = rng.sample(["astropy", "numpy", "matplotlib", "xarray", "sunpy"], 3)
    else:
        runtime["desktop"] = {"command": [executable]}
    runtime["resources"] = {
        "default": {"cpu": 1, "memory": rng.choice(["1G", "2G", "4G"])},
        "maximum": {"cpu": rng.choice([2, 4, 8]), "memory": rng.choice(["8G", "16G"])},
    }
    meta = {
        "name": f"{slug(mission)}-{slug(instrument)}-{slug(noun)}-{i:04d}",
        "title": title,
        "alternateName": f"{title} ({domain.lower()})",
        "abstract": f"{title} for browsing, reducing and analysing {', '.join(keywords[:3])} products "
        f"from the {mission} archive.{cross}",
        "description": f"{title} brings the {mission} {instrument} archive to your browser.\n\n"
        "**What you can do**\n\n"
        + "".join(f"- Work with {k} products, with worked examples and plots.\n" for k in keywords)
        + f"\nData volumes appear under `/media/data/{slug(mission)}`; save results to "
        "`/media/home/my_workspace`.",
        "version": f"{rng.randint(0, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        "creator": {"name": rng.choice(CREATORS)},
        "contactPoint": {"email": "datalabs-support@example.org", "organisation-name": "Datalabs"},
        "mission": mission,
        "instrument": instrument,
        "keywords": keywords,
        "distribution": {"license": rng.choice(LICENCES)},
        "requiredDataset": [f"{slug(mission)}-archive"],
        "domain": domain,
        "datePublished": str(date(2019, 1, 1) + timedelta(days=rng.randrange(2900))),
        "runtime": runtime,
    }
    if i % 10 == 0:  # 10% restricted to a team the benchmark user is not in
        meta["allowed_groups"] = [rng.choice(TEAMS)]
    return meta


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks, as people write them."""


_Dumper.add_representer(
    str,
    lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None),
)


def generate(directory: Path, count: int = DEFINITIONS, seed: int = 1) -> None:
    """`count` definitions as `<directory>/<name>/datalab-meta.yml`, the same for the same seed."""
    rng = random.Random(seed)
    for i in range(count):
        meta = definition(i, rng)
        folder = directory / meta["name"]
        folder.mkdir(parents=True)
        text = yaml.dump(meta, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        (folder / "datalab-meta.yml").write_text(text)


# ---- the run --------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    path: str
    total: int | None  # datalabs matched (None when the reply is not a search)
    body_bytes: int
    result: WrkResult
    cpu_ms: float  # server CPU per completed request
    problems: list[str]  # errors, stalls: anything that makes the figures suspect

    def ratios(self, floor: Row) -> tuple[str, str]:
        """req/s ÷ the floor's, and p50 × the floor's (blank when nothing completed)."""
        r, f = self.result, floor.result
        if not r.requests or not f.requests:
            return "", ""
        return f"{r.rps / f.rps:.3f}", f"{r.p50_ms / f.p50_ms:.1f}"


def fetch(url: str, token: str, patience: float = 120) -> tuple[bytes | None, list[str]]:
    """The reply body of one request, retried while the server fails (e.g. still busy with an earlier
    run's abandoned requests); also the failures met, which make the row suspect."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    failures: list[str] = []
    deadline = time.monotonic() + patience
    while True:
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read(), failures
        except (urllib.error.URLError, OSError) as exc:  # HTTPError is a URLError
            failures.append(str(exc))
            if time.monotonic() > deadline:
                return None, failures
            time.sleep(1)


def problems(result: WrkResult, connections: int, recovery: float) -> list[str]:
    found = [f"{result.non_2xx} non-2xx"] if result.non_2xx else []
    found += [f"{n} socket {kind} errors" for kind, n in result.socket_errors.items() if n]
    if result.requests < connections:  # wrk only counts replies: a stalled server shows no errors
        found.append(
            f"only {result.requests} replies for {connections} clients: some never got an answer "
            "(stalled, or too slow for the run), so the latencies leave out the slowest requests"
        )
    if recovery > 1:
        found.append(f"/healthz unanswered for {recovery:.0f} s after the run")
    return found


def measure(server: Server, token: str, seconds: int, connections: int) -> list[Row]:
    headers = {"Authorization": f"Bearer {token}"}  # sent to /healthz too, so requests are alike
    rows = []
    for label, path in TARGETS.items():
        server.settle()
        body, failures = fetch(server.url + path, token)  # also proves the URL works before loading it
        found = [f"check request failed {len(failures)}x ({failures[-1]})"] if failures else []
        if body is None:
            rows.append(Row(label, path, None, 0, WrkResult.nothing(), 0.0, found + ["not measured"]))
            continue
        total = json.loads(body).get("total") if path.startswith("/api/v1/datalabs") else None
        # gentle warm-up (snapshot, connections, threads) that cannot itself overload the server
        wrk(server.url + path, threads=1, connections=10, seconds=2, timeout=30, headers=headers)
        server.settle()
        cpu = server.cpu_seconds()
        result = wrk(server.url + path, threads=2, connections=connections, seconds=seconds, timeout=30,
                     headers=headers)  # fmt: skip
        cpu_ms = (server.cpu_seconds() - cpu) * 1e3 / max(result.requests, 1)
        found += problems(result, connections, recovery=server.settle())
        rows.append(Row(label, path, total, len(body), result, cpu_ms, found))
    return rows


def cells(row: Row, floor: Row) -> list[str]:
    r = row.result
    return [
        "" if row.total is None else str(row.total),
        f"{row.body_bytes / 1024:.1f} KiB",
        f"{r.rps:,.0f}",
        f"{r.p50_ms:.1f}",
        f"{r.p99_ms:.1f}",
        f"{row.cpu_ms:.2f}" if r.requests else "",
        *row.ratios(floor),
    ]


COLUMNS = ["matched", "body", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "req/s ÷ floor",
           "p50 × floor"]  # fmt: skip


def table(rows: list[Row]) -> Table:
    t = Table(title=f"Catalogue search, {DEFINITIONS:,} definitions")
    t.add_column("endpoint")
    for col in COLUMNS:
        t.add_column(col, justify="right")
    t.add_column("errors")
    for row in rows:
        t.add_row(row.label, *cells(row, rows[0]), "[bold red]YES[/]" if row.problems else "none")
    return t


def report_problems(console: Console, rows: list[Row]) -> None:
    for row in rows:
        for problem in row.problems:
            console.print(f"[bold red]{row.label}: {problem}[/]")


def markdown(rows: list[Row], seconds: int, connections: int, server: Server, setting: dict[str, str]) -> str:
    lines = [
        "## Catalogue search",
        "",
        f"{DEFINITIONS:,} generated datalab definitions (15 missions, web and desktop, 10% restricted to a "
        "team the benchmark user is not in, so it sees about 900), served by a real `datalabs serve` "
        "(uvicorn, one process, SQLite in a temporary DATALABS_HOME, built-in definitions off). "
        f"wrk, {connections} connections on 2 threads, {seconds} s per endpoint after a gentle warm-up "
        "(10 connections, 2 s), bearer token on every request. The floor is `/healthz` (no auth, DB or "
        "catalogue work); `/api/v1/me` shows what token authentication alone costs.",
        "",
        "- Command: `.venv/bin/python -m bench` (or `make bench`), in the repository root",
        f"- wrk: `wrk -t2 -c{connections} -d{seconds}s --timeout=30s --latency "
        '-H "Authorization: Bearer <token>" <url>` (a 30 s timeout, so slow replies are measured, '
        "not dropped; wrk counts only replies, so fewer replies than clients is reported as a stall)",
        f"- Machine: {setting['machine']}",
        "- Caveat: wrk runs on the same machine and keeps about one core busy, so the server effectively "
        "has one core; the Python server is single-process (one core at most for its own Python code).",
        f"- Date: {setting['date']}; code: {setting['code']}; server start with the catalogue loaded: "
        f"{server.started_in:.1f} s",
        "",
        "| endpoint | " + " | ".join(COLUMNS) + " | errors |",
        "| --- | " + "---: | " * len(COLUMNS) + "--- |",
    ]
    for row in rows:
        problem = "**" + "; ".join(row.problems) + "**" if row.problems else "none"
        lines.append(f"| `{row.path}` | " + " | ".join(cells(row, rows[0])) + f" | {problem} |")
    if any(row.problems for row in rows):
        lines += [
            "",
            "**WARNING: this run had errors or stalls (see the errors column); figures are suspect.**",
        ]
    return "\n".join(lines)


def run(seconds: int = 10, connections: int = 200) -> bool:
    """Run the benchmark, print the table and write RESULTS.md; False if any request failed or stalled."""
    console = Console(width=max(Console().width, 130))  # the table needs ~120 columns, also in logs
    # taken before the run: the load average and the code as they were when measuring began
    setting = {"machine": machine(), "code": revision(), "date": date.today().isoformat()}
    with tempfile.TemporaryDirectory(prefix="datalabs-bench-") as tmp:
        home, defs = Path(tmp) / "home", Path(tmp) / "catalogue"
        home.mkdir()
        generate(defs)
        env = clean_env(
            DATALABS_HOME=str(home),
            DATALABS_CATALOGUE__DIRS=json.dumps([str(defs)]),
            DATALABS_CATALOGUE__BUILTIN="false",
        )
        datalabs("admin", "create-user", "bench", "--password", "bench-password-1", env=env)
        token = datalabs("admin", "create-token", "bench", env=env)
        console.print(f"{DEFINITIONS:,} definitions in {defs}; starting the server...")
        with serve(env, Path(tmp) / "server.log") as server:
            console.print(f"server ready in {server.started_in:.1f} s (pid {server.pid}); running wrk...")
            rows = measure(server, token, seconds, connections)
    console.print(table(rows))
    report_problems(console, rows)
    write_section(SECTION, markdown(rows, seconds, connections, server, setting))
    console.print(f"written to {RESULTS.relative_to(ROOT)}")
    ok = not any(row.problems for row in rows)
    if not ok:
        console.print("[bold red]WARNING: some requests failed or stalled; the figures above are suspect.[/]")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per endpoint")
    parser.add_argument("--connections", type=int, default=200, help="concurrent clients")
    args = parser.parse_args()
    raise SystemExit(0 if run(args.seconds, args.connections) else 1)


if __name__ == "__main__":
    main()
