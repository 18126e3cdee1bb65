"""`python -m bench [name ...]`: run every benchmark (or the named ones); exit 1 if any reported errors."""

from __future__ import annotations

import sys

from bench import (
    app_build,
    assets_search,
    catalogue_search,
    cwl_conformance,
    desktop,
    files_transfer,
    first_day,
    lab_start,
    models,
    pipelines,
    proxy,
    replicas,
    slurm,
    triggers,
)

BENCHMARKS = {
    "catalogue-search": catalogue_search.run,
    "files-transfer": files_transfer.run,
    "lab-start": lab_start.run,
    "proxy": proxy.run,
    "assets-search": assets_search.run,
    "pipelines": pipelines.run,
    "cwl-conformance": cwl_conformance.run,
    "desktop": desktop.run,
    "app-build": app_build.run,
    "first-day": first_day.run,
    "slurm": slurm.run,
    "replicas": replicas.run,
    "triggers": triggers.run,
    "models": models.run,
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    results = [BENCHMARKS[name]() for name in names or BENCHMARKS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
