"""Catalogue search API with 1,000 datalab definitions under 200 concurrent clients, beside /healthz.

A real `datalabs serve` (SQLite in a temporary DATALABS_HOME) loads 1,000 generated definitions; wrk
drives /healthz (the floor: routing, middleware and JSON with no auth, DB or catalogue work) and three
catalogue searches with a bearer token. Reports req/s, p50/p99 and the ratios to /healthz.

    .venv/bin/python -m bench.catalogue_search [--seconds 10] [--connections 200]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import urllib.request
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from bench.common import ROOT, Server, WrkResult, clean_env, datalabs, machine, serve, write_section, wrk

SECTION = "catalogue-search"
DEFINITIONS = 1000
TEAMS = ["astro-team", "gnss-team", "planetary-team", "euclid-consortium", "helio-team"]
TARGETS = {
    "/healthz (floor)": "/healthz",
    "search q=gaia": "/api/v1/datalabs?q=gaia&limit=20",
    "facets kind=desktop, mission=Planck": "/api/v1/datalabs?kind=desktop&mission=Planck&limit=20",
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
    total: int | None  # datalabs matched (None for /healthz)
    body_bytes: int
    result: WrkResult
    cpu_ms: float  # server CPU per request


def fetch(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def measure(server: Server, token: str, seconds: int, connections: int) -> list[Row]:
    headers = {"Authorization": f"Bearer {token}"}  # sent to /healthz too, so requests are alike
    rows = []
    for label, path in TARGETS.items():
        body = fetch(server.url + path, token)  # also proves the URL works before loading it
        total = json.loads(body).get("total") if path.startswith("/api/") else None
        load = dict(threads=2, connections=connections, timeout=30, headers=headers)
        wrk(server.url + path, seconds=2, **load)  # warm-up
        cpu = server.cpu_seconds()
        result = wrk(server.url + path, seconds=seconds, **load)
        cpu_ms = (server.cpu_seconds() - cpu) * 1e3 / max(result.requests, 1)
        rows.append(Row(label, path, total, len(body), result, cpu_ms))
    return rows


def table(rows: list[Row]) -> Table:
    floor = rows[0].result
    t = Table(title=f"Catalogue search, {DEFINITIONS} definitions")
    for col in ("endpoint", "matched", "body", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "req/s ÷ floor",
                "p50 × floor", "errors"):  # fmt: skip
        t.add_column(col, justify="left" if col == "endpoint" else "right")
    for row in rows:
        r = row.result
        t.add_row(
            row.label,
            "" if row.total is None else str(row.total),
            f"{row.body_bytes / 1024:.1f} KiB",
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{row.cpu_ms:.2f}",
            f"{r.rps / floor.rps:.3f}",
            f"{r.p50_ms / floor.p50_ms:.1f}",
            f"[bold red]{describe_errors(r)}[/]" if r.errors else "0",
        )
    return t


def describe_errors(r: WrkResult) -> str:
    parts = [f"{r.non_2xx} non-2xx"] if r.non_2xx else []
    parts += [f"{n} {kind}" for kind, n in r.socket_errors.items() if n]
    return ", ".join(parts) or "0"


def markdown(rows: list[Row], seconds: int, connections: int, server: Server, today: str) -> str:
    floor = rows[0].result
    lines = [
        "## Catalogue search",
        "",
        f"{DEFINITIONS:,} generated datalab definitions (15 missions, web and desktop, 10% restricted to a "
        "team the benchmark user is not in, so it sees about 900), served by a real `datalabs serve` "
        "(uvicorn, one process, SQLite in a temporary DATALABS_HOME, built-in definitions off). "
        f"wrk, {connections} connections on 2 threads, {seconds} s per endpoint after a 2 s "
        "warm-up, bearer token on every request; the floor is `/healthz` (no auth, DB or catalogue work).",
        "",
        f"- Command: `cd {ROOT.name} && .venv/bin/python -m bench` (or `make bench`)",
        f"- wrk: `wrk -t2 -c{connections} -d{seconds}s --timeout=30s --latency "
        '-H "Authorization: Bearer <token>" <url>` (30 s timeout so slow replies are measured, not dropped)',
        f"- Machine: {machine()}",
        "- Caveat: wrk runs on the same machine and keeps about one core busy, so the server effectively "
        "has one core; the Python server is single-process (one core at most for its own Python code).",
        f"- Date: {today}; server start with the catalogue loaded: {server.started_in:.1f} s",
        "",
        "| endpoint | matched | body | req/s | p50 ms | p99 ms | server CPU ms/req | req/s ÷ floor "
        "| p50 × floor | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        r = row.result
        err = f"**{describe_errors(r)}**" if r.errors else "0"
        lines.append(
            f"| `{row.path}` | {'' if row.total is None else row.total} | {row.body_bytes / 1024:.1f} KiB "
            f"| {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {row.cpu_ms:.2f} "
            f"| {r.rps / floor.rps:.3f} | {r.p50_ms / floor.p50_ms:.1f} | {err} |"
        )
    if any(row.result.errors for row in rows):
        lines += ["", "**WARNING: this run had errors (see the errors column); its figures are suspect.**"]
    return "\n".join(lines)


def run(seconds: int = 10, connections: int = 200) -> bool:
    """Run the benchmark, print the table and write RESULTS.md; False if any request failed."""
    console = Console()
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
        console.print(f"{DEFINITIONS} definitions in {defs}; starting the server...")
        with serve(env, Path(tmp) / "server.log") as server:
            console.print(f"server ready in {server.started_in:.1f} s (pid {server.pid}); running wrk...")
            rows = measure(server, token, seconds, connections)
        today = date.today().isoformat()
    console.print(table(rows))
    write_section(SECTION, markdown(rows, seconds, connections, server, today))
    console.print(f"written to {Path('bench/RESULTS.md')}")
    ok = not any(row.result.errors for row in rows)
    if not ok:
        console.print("[bold red]WARNING: some requests failed; the figures above are suspect.[/]")
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
