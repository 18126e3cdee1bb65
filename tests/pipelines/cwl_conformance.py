"""The CWL v1.2 conformance suite (shipped in ../shared/conformance/cwl-v1.2) run with `cwltest` through
`datalabs cwl-runner` against a real platform, and the same selection through plain `cwltool`.

Used by tests/pipelines/test_cwl_conformance.py (the required non-docker tests, both engines) and by
`python -m bench.cwl_conformance` (every non-docker test, side by side with `cwltool --no-container`):

    .venv/bin/python -m tests.pipelines.cwl_conformance [--engine cwltool|toil|both] [--all] [-j 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT.parent / "shared" / "conformance" / "cwl-v1.2"
BIN = Path(sys.executable).parent
REQUIRED = ("--tags", "required", "--exclude-tags", "docker")
NON_DOCKER = ("--exclude-tags", "docker")


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # exit 33 on a test not tagged required
    seconds: float = 0.0
    reasons: dict[str, str] = field(default_factory=dict)  # failed test -> what cwltest said about it
    flaky: dict[str, str] = field(default_factory=dict)  # failed, then passed alone -> the first failure

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.unsupported)

    def summary(self) -> str:
        return f"{len(self.passed)}/{self.total} passed ({len(self.unsupported)} unsupported)"

    def explain(self, limit: int = 4000) -> str:
        """Each failure with cwltest's own account of it (the runner's stderr, the output diff)."""
        return "\n".join(f"--- {name}:\n{self.reasons.get(name, '')[-limit:]}" for name in self.failed)


def available() -> bool:
    return (SUITE / "conformance_tests.yaml").is_file() and (BIN / "cwltest").exists()


def run_cwltest(tool: Path, selection: tuple[str, ...], work: Path, jobs: int = 2, timeout: int = 300):
    """cwltest with `tool` as the runner over the selected tests; the Outcome from its JUnit report."""
    junit = work / f"junit-{tool.name}.xml"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "TMPDIR": str(work)}
    argv = [
        str(BIN / "cwltest"),
        "--test",
        "conformance_tests.yaml",
        "--tool",
        str(tool),
        f"-j{jobs}",
        "--timeout",
        str(timeout),
        "--junit-xml",
        str(junit),
        *selection,
    ]
    log = work / f"cwltest-{tool.name}.log"
    with log.open("w") as out:
        subprocess.run(argv, cwd=SUITE, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    return parse_junit(junit)


def required_names() -> list[str]:
    """The ids of the required non-docker tests (as the JUnit report names them in `file`)."""
    listing = subprocess.run(
        [str(BIN / "cwltest"), "--test", "conformance_tests.yaml", "-l", *REQUIRED],
        cwd=SUITE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split("] ", 1)[1].split(":", 1)[0] for line in listing.splitlines() if "] " in line]


def parse_junit(path: Path) -> Outcome:
    """Tests by id (the report's `file`), as passed, failed or unsupported."""
    outcome = Outcome()
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("file") or case.get("name", "?")
        outcome.seconds += float(case.get("time") or 0)
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            outcome.failed.append(name)
            said = [problem.get("message") or "", problem.text or ""]
            said += [(case.findtext(stream) or "") for stream in ("system-out", "system-err")]
            outcome.reasons[name] = "\n".join(part for part in said if part.strip())
        elif case.find("skipped") is not None:
            outcome.unsupported.append(name)
        else:
            outcome.passed.append(name)
    return outcome


def wrapper(work: Path, name: str, argv: list[str], env: dict[str, str]) -> Path:
    """An executable cwltest can call as its runner: `argv` with the test's arguments, in `env`."""
    path = work / name
    exports = "".join(f"export {k}='{v}'\n" for k, v in env.items())
    path.write_text(f'#!/bin/sh\n{exports}exec {" ".join(argv)} "$@"\n')
    path.chmod(0o755)
    return path


@contextmanager
def platform(work: Path, slots: int = 2) -> Iterator[dict[str, str]]:
    """A real `datalabs serve` on a new home with one user; yields the client's environment."""
    from tests.live import live_server

    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALABS_")}
    env |= {
        "DATALABS_HOME": str(home),
        "DATALABS_PIPELINES__SLOTS": str(slots),
        "DATALABS_PIPELINES__SYSTEM": "false",
        # Tools that require a container image run in the sandbox with the platform's software (one
        # required test names DockerRequirement without the docker tag), as documented in the README.
        "DATALABS_PIPELINES__CONTAINERS": "sandbox",
    }
    home.mkdir(parents=True, exist_ok=True)
    datalabs = str(BIN / "datalabs")
    admin = [datalabs, "admin"]
    subprocess.run([*admin, "create-user", "cwl", "--password", "conformance-pw"], env=env, check=True)
    token = subprocess.run(
        [*admin, "create-token", "cwl"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with live_server(home) as url:
            yield {"DATALABS_API_URL": url, "DATALABS_TOKEN": token}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def through_platform(
    work: Path, engines: list[str], selection: tuple[str, ...], jobs: int = 2, retry: bool = False
):
    """{engine: Outcome} of the selection run through `datalabs cwl-runner --engine <engine>`. With
    `retry`, tests that failed run once more, alone: those that pass then count as passed, and their
    first failure is kept in the Outcome's `flaky` (reported, never hidden)."""
    results = {}
    with platform(work, slots=max(2, jobs)) as client_env:
        for engine in engines:
            tool = wrapper(
                work,
                f"datalabs-{engine}",
                [str(BIN / "datalabs"), "cwl-runner", "--engine", engine],
                client_env,
            )
            outcome = run_cwltest(tool, selection, work, jobs)
            if retry and outcome.failed:
                again = run_cwltest(tool, ("-s", ",".join(outcome.failed)), work, 1)
                for name in again.passed:
                    outcome.failed.remove(name)
                    outcome.passed.append(name)
                    outcome.flaky[name] = outcome.reasons.pop(name, "")
            results[engine] = outcome
    return results


def through_cwltool(work: Path, selection: tuple[str, ...], jobs: int = 2) -> Outcome:
    tool = wrapper(work, "cwltool-plain", [str(BIN / "cwltool"), "--no-container"], {})
    return run_cwltest(tool, selection, work, jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="cwltool", choices=["cwltool", "toil", "both"])
    parser.add_argument("--all", action="store_true", help="every non-docker test, not only the required")
    parser.add_argument("--peer", action="store_true", help="also run plain cwltool --no-container")
    parser.add_argument("-j", type=int, default=2)
    parser.add_argument("-n", default="", help="cwltest test numbers, e.g. 1,3-6")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    selection = NON_DOCKER if args.all else REQUIRED
    if args.n:
        selection = (*selection, "-n", args.n)
    engines = ["cwltool", "toil"] if args.engine == "both" else [args.engine]
    work = Path(tempfile.mkdtemp(prefix="cwl-conformance-"))
    for engine, outcome in through_platform(work, engines, selection, args.j).items():
        print(f"datalabs cwl-runner --engine {engine}: {outcome.summary()}")
        print(outcome.explain())
    if args.peer:
        peer = through_cwltool(work, selection, args.j)
        print(f"cwltool --no-container: {peer.summary()}")
        for name in peer.failed:
            print(f"  failed: {name}")
        for name in peer.unsupported:
            print(f"  unsupported: {name}")
    print(f"work folder: {work}" if args.keep else "")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
