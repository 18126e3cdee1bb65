"""Datalab build time (issue 8): a typical scientific `requirements.txt` built by our builder, cold and
warm, beside the same packages put into a fresh venv with plain `pip install`, in the same run.

    .venv/bin/python -m bench app-build          # or: .venv/bin/python -m bench.app_build --rounds 2

Ours is the real `UvBuilder` (uv inside bubblewrap, as a build started from the UI runs): creating the
environment, installing, and checking that its kernel starts all count. Cases:
- cold: empty download cache, new environment;
- warm: the download cache kept, the environment deleted (a new requirement set sharing packages);
- unchanged: the same requirements again (a new version of the same datalab): the environment is reused.
The peer is `python -m venv` + `pip install -r requirements.txt` (pip upgraded first, outside the
timing), cold with an empty `PIP_CACHE_DIR`, warm with the cache it filled. Both download from the
package index the host can reach, so network speed is part of the cold figures (read them side by side).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import RESULTS, machine, revision, write_section
from datalabs.builder.base import BuildRequest
from datalabs.builder.uv import UvBuilder, base_interpreter

SECTION = "app-build"
REQUIREMENTS = ["numpy", "astropy", "matplotlib"]


def _ours(work: Path, rounds: int) -> dict[str, list[float]]:
    sources = work / "sources"
    sources.mkdir()
    (sources / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    request = BuildRequest(sources, REQUIREMENTS, sources / "requirements.txt", "bench 0.1.0-0")
    times: dict[str, list[float]] = {"cold": [], "warm": [], "unchanged": []}
    for _ in range(rounds):
        envs = work / "envs"
        shutil.rmtree(envs, ignore_errors=True)
        builder = UvBuilder(envs)
        for case in ("cold", "warm", "unchanged"):
            if case == "warm":
                shutil.rmtree(envs / builder.key(request))  # the cache stays
            started = time.perf_counter()
            result = builder.build(request, lambda _line: None)
            times[case].append(time.perf_counter() - started)
            assert result.cached == (case == "unchanged"), case
        check = [str(result.env / "bin" / "python"), "-c", "import numpy, astropy, matplotlib"]
        subprocess.run(check, check=True)
    return times


def _pip_env() -> dict[str, str]:
    """pip against the same index uv uses: no local wheel directories or extra indexes from this host's
    pip configuration (they would let pip skip downloads uv has to make); the host's CA bundle kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}


def _pip(work: Path, rounds: int) -> dict[str, list[float]]:
    env = _pip_env()
    requirements = work / "pip-requirements.txt"
    requirements.write_text("\n".join(REQUIREMENTS) + "\n")
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(rounds):
        cache = work / "pip-cache"
        shutil.rmtree(cache, ignore_errors=True)
        for case in ("cold", "warm"):
            venv = work / f"venv-{case}"
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([base_interpreter(), "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
            subprocess.run([*pip, "install", "--upgrade", "pip"], check=True, env=env)  # untimed: today's pip
            started = time.perf_counter()
            install = [*pip, "install", "--cache-dir", str(cache), "-r", str(requirements)]
            subprocess.run(install, check=True, env=env)
            times[case].append(time.perf_counter() - started)
    return times


def _version(work: Path) -> str:
    out = subprocess.run(
        [str(work / "venv-warm" / "bin" / "pip"), "--version"], capture_output=True, text=True
    ).stdout
    return out.split(" from ")[0]


def markdown(ours: dict, pip: dict, setting: str, pip_version: str, rounds: int) -> str:
    m = {k: statistics.median(v) for k, v in ours.items()}
    p = {k: statistics.median(v) for k, v in pip.items()}
    return "\n".join(
        [
            f"## {SECTION}",
            "",
            f"Build of a datalab whose requirements.txt is `{' '.join(REQUIREMENTS)}` (issue 8), our "
            f"`UvBuilder` (uv in bubblewrap: environment, install, kernel check) beside `python -m venv` + "
            f"plain `pip install -r` ({pip_version}), medians of {rounds} round(s), same run. {setting}.",
            "",
            "| case | datalabs | plain pip | ratio |",
            "|---|---:|---:|---:|",
            f"| cold (empty caches) | {m['cold']:.1f} s | {p['cold']:.1f} s | {p['cold'] / m['cold']:.1f}x |",
            f"| warm download cache, new environment | {m['warm']:.1f} s | {p['warm']:.1f} s "
            f"| {p['warm'] / m['warm']:.1f}x |",
            f"| unchanged requirements (new version of the same datalab) | {m['unchanged'] * 1000:.0f} ms "
            "(environment reused) | as warm: pip has no reuse | — |",
            "",
            "Command: `.venv/bin/python -m bench app-build` (`python -m bench.app_build --rounds N`).",
            "",
        ]
    )


def run(rounds: int = 3) -> bool:
    console = Console()
    setting = f"{machine()}; {time.strftime('%Y-%m-%d')}; code {revision()}"
    with tempfile.TemporaryDirectory(prefix="bench-app-build-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        console.print("our builder: cold, warm, unchanged ...")
        ours = _ours(work, rounds)
        console.print("plain pip: cold, warm ...")
        pip = _pip(work, rounds)
        pip_version = _version(work)
    table = Table("case", "datalabs (s)", "plain pip (s)")
    for case in ("cold", "warm", "unchanged"):
        peer = statistics.median(pip[case]) if case in pip else float("nan")
        table.add_row(case, f"{statistics.median(ours[case]):.2f}", f"{peer:.2f}")
    console.print(table)
    write_section(SECTION, markdown(ours, pip, setting, pip_version, rounds))
    console.print(f"written to {RESULTS}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    raise SystemExit(0 if run(parser.parse_args().rounds) else 1)


if __name__ == "__main__":
    main()
