"""Shared benchmark helpers: the machine, a real `datalabs serve`, wrk runs, and RESULTS.md sections."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: `datalabs`, and `py-spy` when installed
RESULTS = ROOT / "bench" / "RESULTS.md"


# ---- the machine ----------------------------------------------------------------------------------


def machine() -> str:
    """One line: CPUs, RAM, CPU model, OS and Python, as RESULTS.md records them."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text()
    kib = int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)[1])
    return (
        f"{len(os.sched_getaffinity(0))} CPUs (nproc), {kib / 2**20:.1f} GiB RAM, "
        f"{model[1].strip() if model else 'unknown CPU'}; {os.uname().sysname} {os.uname().release}, "
        f"Python {sys.version.split()[0]}; load average before the run "
        + "/".join(f"{x:.2f}" for x in os.getloadavg())
    )


def revision() -> str:
    """The commit measured, `+ changes` when the working tree differs from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True)
    return f"`{head.strip() or 'unknown'}`" + (" + uncommitted changes in src/" if dirty.stdout else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- a real server --------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without inherited DATALABS_* settings (e.g. a PostgreSQL URL), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALABS_")}
    return env | extra


def datalabs(*args: str, env: dict[str, str]) -> str:
    """Run the `datalabs` CLI; its stdout, or an error carrying its stderr."""
    proc = subprocess.run([str(BIN / "datalabs"), *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"datalabs {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


@dataclass
class Server:
    url: str
    pid: int
    started_in: float  # seconds from spawn to the first 200 of /healthz

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, timeout: float = 300) -> float:
        """Wait until /healthz answers within a second (a server may go on serving requests whose
        clients left); returns the seconds waited."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                return time.perf_counter() - start
        raise RuntimeError(f"server at {self.url} still unresponsive after {timeout} s")


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, timeout: float = 120) -> Iterator[Server]:
    """`datalabs serve` on a free port, yielded once /healthz answers; always terminated afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "datalabs"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=env["DATALABS_HOME"],  # so no stray ./datalabs.toml is picked up
            stdout=out,  # a file, not a pipe: the access log must never block the server
            stderr=subprocess.STDOUT,
        )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"server not ready after {timeout} s:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                if r.status == 200:
                    break
            time.sleep(0.05)
        yield Server(url=url, pid=proc.pid, started_in=time.perf_counter() - start)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- wrk ------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # wrk counts status >= 400 as "Non-2xx or 3xx responses"
    socket_errors: dict[str, int]
    output: str

    @classmethod
    def nothing(cls) -> WrkResult:
        """The figures of a run that did not happen."""
        return cls(0, 0.0, 0.0, 0.0, 0.0, 0, {}, "")

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(output: str) -> WrkResult:
    """Figures from `wrk --latency` output; raises ValueError if a required line is missing."""

    def need(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.M)
        if not match:
            raise ValueError(f"no /{pattern}/ in wrk output:\n{output}")
        return match

    def latency(pct: str) -> float:
        m = need(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        return float(m[1]) * _UNITS[m[2]]

    done = need(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(done[1]),
        seconds=float(done[2]) * _UNITS[done[3]] / 1e3,
        rps=float(need(r"^Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=dict(
            zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)
        )
        if errors
        else {},
        output=output,
    )


def wrk_args(
    url: str, *, threads: int, connections: int, seconds: int, timeout: int, headers: dict[str, str]
) -> list[str]:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    return [*args, url]


def wrk(url: str, **kwargs) -> WrkResult:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: run scripts/install-system-packages.sh test")
    proc = subprocess.run(wrk_args(url, **kwargs), capture_output=True, text=True, check=True)
    return parse_wrk(proc.stdout)


# ---- RESULTS.md -----------------------------------------------------------------------------------

_HEADER = """# Benchmark results

Written by `make bench` (`.venv/bin/python -m bench`); each benchmark replaces only its own section,
between its `<!-- name:start -->` / `<!-- name:end -->` markers. Figures are from one run on the machine
named in the section; compare ratios (measured in the same run), not absolute numbers across machines.
"""


def write_section(key: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section between `<!-- key:start -->` and `<!-- key:end -->`."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else _HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
