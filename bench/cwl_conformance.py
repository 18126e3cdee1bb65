"""CWL v1.2 conformance, side by side: every non-docker test of the suite shipped in
../shared/conformance/cwl-v1.2, run with `cwltest` through `datalabs cwl-runner` (cwltool engine, Toil
engine) against a real platform, and through plain `cwltool --no-container`, in the same run.

    .venv/bin/python -m bench.cwl_conformance [--no-toil] [-j 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.pipelines import cwl_conformance as conformance

from bench.common import RESULTS, machine, revision, write_section

SECTION = "cwl-conformance"


def markdown(results: dict, setting: str) -> str:
    lines = [
        "## CWL v1.2 conformance",
        "",
        f"`make bench` (`python -m bench.cwl_conformance`), {setting}",
        "",
        "| runner | required non-docker | all non-docker | unsupported (exit 33) | wall time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, (required, everything, seconds) in results.items():
        req, every = (
            f"{len(required.passed)}/{required.total}",
            f"{len(everything.passed)}/{everything.total}",
        )
        lines.append(f"| {name} | {req} | {every} | {len(everything.unsupported)} | {seconds:.0f} s |")
    failed = {name: sorted(set(r[1].failed)) for name, r in results.items() if r[1].failed}
    for name, tests in failed.items():
        lines += ["", f"{name} failed: " + "; ".join(tests)]
    return "\n".join(lines)


def _split(outcome: conformance.Outcome, required: set[str]) -> conformance.Outcome:
    return conformance.Outcome(
        passed=[t for t in outcome.passed if t in required],
        failed=[t for t in outcome.failed if t in required],
        unsupported=[t for t in outcome.unsupported if t in required],
    )


def run(toil: bool = True, jobs: int = 2) -> bool:
    if not conformance.available():
        print("the CWL conformance suite or cwltest is missing: skipped")
        return True
    setting = f"{machine()}; {time.strftime('%Y-%m-%d')}; code {revision()}"
    required = set(conformance.required_names())
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-cwl-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        peer = conformance.through_cwltool(work, conformance.NON_DOCKER, jobs)
        results["cwltool --no-container"] = (_split(peer, required), peer, time.perf_counter() - start)
        engines = ["cwltool", "toil"] if toil else ["cwltool"]
        for engine in engines:
            start = time.perf_counter()
            ours = conformance.through_platform(work / engine, [engine], conformance.NON_DOCKER, jobs)[engine]
            name = f"datalabs cwl-runner --engine {engine}"
            results[name] = (_split(ours, required), ours, time.perf_counter() - start)
    for name, (req, everything, seconds) in results.items():
        print(f"{name}: required {req.summary()}, all {everything.summary()}, {seconds:.0f} s")
    write_section(SECTION, markdown(results, setting))
    print(f"written to {RESULTS}")
    best = len(peer.passed)
    return all(
        len(r[1].passed) >= best and not r[0].failed for n, r in results.items() if n.startswith("datalabs")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-toil", action="store_true")
    parser.add_argument("-j", type=int, default=2)
    args = parser.parse_args()
    raise SystemExit(0 if run(not args.no_toil, args.j) else 1)


if __name__ == "__main__":
    main()
