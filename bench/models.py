"""A served model's request overhead on the platform's path over calling the model server directly
(issue 18 Build 4; goal: <= 2 ms at p50).

The model server is the `mlflow-model` datalab's own `serve.py` (MLflow's pyfunc scoring server under the
lab's path, uvicorn on a unix socket) serving a scikit-learn LinearRegression saved with mlflow, run in an
environment with the pinned MLflow (uv, into bench/.cache/mlflow-env on first use). The platform's path
is the proxy `datalabs serve` mounts (LabProxy with the platform's cached authenticator over a real
SQLite database, a real API token granting `models:invoke`, the route team-scoped with its invoke scope,
request metrics recorded), served by uvicorn on TCP in its own process; `datalabs serve` adds only its
outermost ProxyFirst dispatch (one string test) in front of it. Not measured here: the sandbox (a lab's
socket is a unix socket either way).

One client (httpx, one keep-alive connection per path) posts the same 2-row JSON prediction request,
alternating the two paths in rounds so they share the machine's noise; latencies per request; the
overhead is p50(platform) - p50(direct), and the same at p95.

    .venv/bin/python -m bench.models [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

from bench.common import ROOT, free_port, machine, revision, write_section

SECTION = "models"
WORK = ROOT / "bench" / "out" / "models"  # gitignored
ENV = ROOT / "bench" / ".cache" / "mlflow-env"  # gitignored
SERVE = ROOT / "src" / "datalabs" / "catalogue" / "builtin" / "mlflow-model" / "serve.py"
REQUIREMENTS = ["mlflow==3.17.2", "scikit-learn>=1.5"]
BASE = "/datalabs/benchmodel/"
BODY = {"inputs": [[3.0], [4.0]]}
GOAL_MS = 2.0

SAVE_MODEL = """
import sys, numpy as np, mlflow.sklearn
from sklearn.linear_model import LinearRegression
X = np.arange(10.0).reshape(-1, 1)
mlflow.sklearn.save_model(LinearRegression().fit(X, 2 * X[:, 0] + 1), sys.argv[1], input_example=X[:2])
"""


def python_env() -> Path:
    """bench/.cache/mlflow-env with the pinned MLflow and scikit-learn (made once)."""
    python = ENV / "bin" / "python"
    if not python.exists():
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(ENV)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *REQUIREMENTS], check=True)
    return python


def proxy_server(socket: str, port: int, db_url: str, owner: str) -> None:
    """The platform's proxy alone (run in its own process by `run`): one team-scoped model route."""
    import asyncio

    import uvicorn

    from datalabs.db.engine import open_database
    from datalabs.proxy import LabProxy, MemoryRouteTable, Route, make_authenticator

    _, sessions = open_database(db_url)
    routes = MemoryRouteTable()
    asyncio.run(
        routes.add_route(
            Route("benchmodel", owner, socket=socket, team="bench", invoke_scope="models:invoke")
        )
    )
    proxy = LabProxy(routes, make_authenticator(sessions))
    uvicorn.run(
        proxy, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False
    )


def make_database(path: Path) -> tuple[str, str]:
    """A migrated SQLite database with a user in team `bench` and a `models:invoke` token: (url, token)."""
    from datalabs.accounts import auth, service
    from datalabs.config import Settings
    from datalabs.db.engine import make_engine, migrate, open_database, transaction

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    settings = Settings(home=path.parent / "home", db={"url": url}, auth={"secret_key": "bench"})
    engine, sessions = open_database(url)
    with transaction(sessions) as db:
        user = service.create_user(db, "ada", "long-enough-pw")
        service.create_group(db, "bench")
        service.set_member(db, "bench", "ada")
        _, token = auth.create_token(db, settings, user, "bench", ["models:invoke"])
    engine.dispose()
    return url, token


def wait_for(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s")


def timed(client: httpx.Client, url: str, n: int, headers: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(url, json=BODY, headers=headers)
        out.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(requests: int = 2000, rounds: int = 5) -> bool:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    python = python_env()
    model = WORK / "model"
    subprocess.run([str(python), "-c", SAVE_MODEL, str(model)], check=True, cwd=WORK)
    socket = str(WORK / "model.sock")
    db_url, token = make_database(WORK / "datalabs.db")
    port = free_port()
    logs = [open(WORK / "model.log", "w"), open(WORK / "proxy.log", "w")]  # noqa: SIM115
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [str(python), str(SERVE), socket, BASE, f"file://{model}"], stdout=logs[0], stderr=logs[0]
        ),
        subprocess.Popen(
            [sys.executable, "-m", "bench.models", "--proxy-server", socket, str(port), db_url, "ada"],
            stdout=logs[1],
            stderr=logs[1],
            env=env,
        ),
    ]
    direct = httpx.Client(transport=httpx.HTTPTransport(uds=socket), base_url="http://model", timeout=30)
    platform = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        wait_for(
            lambda: os.path.exists(socket) and direct.get(f"{BASE}health").status_code == 200, "model server"
        )
        wait_for(lambda: platform.get(f"{BASE}health", headers=auth).status_code == 200, "proxy")
        refused = platform.post(f"{BASE}invocations", json=BODY).status_code
        times: dict[str, list[float]] = {"direct": [], "platform": []}
        timed(direct, f"{BASE}invocations", 100, {})  # warm both paths (model, pools, auth cache)
        timed(platform, f"{BASE}invocations", 100, auth)
        per_round = max(1, requests // rounds)
        for i in range(rounds):
            order = ("direct", "platform") if i % 2 == 0 else ("platform", "direct")
            for name in order:
                client, headers = (direct, {}) if name == "direct" else (platform, auth)
                times[name] += timed(client, f"{BASE}invocations", per_round, headers)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        for log in logs:
            log.close()
    report(times, refused)
    return refused == 401


def report(times: dict[str, list[float]], refused: int) -> None:
    rows = []
    for name in ("direct", "platform"):
        values = times[name]
        rows.append(
            f"| {name} | {len(values)} | {pct(values, 0.5):.2f} | {pct(values, 0.95):.2f} | "
            f"{statistics.fmean(values) * 1000:.2f} |"
        )
    p50 = pct(times["platform"], 0.5) - pct(times["direct"], 0.5)
    p95 = pct(times["platform"], 0.95) - pct(times["direct"], 0.95)
    verdict = "met" if p50 <= GOAL_MS else "NOT met"
    body = f"""## Served model: the platform's path over the model server (issue 18)

`.venv/bin/python -m bench.models` — {date.today().isoformat()}, {machine()}, revision {revision()}.
MLflow 3.17.2 pyfunc scoring server (the `mlflow-model` datalab's serve.py, scikit-learn
LinearRegression, 2-row JSON) on a unix socket; the platform's path = LabProxy with the platform's
authenticator (SQLite, `models:invoke` token) and model metrics, uvicorn on TCP. One client, one
keep-alive connection per path, sequential requests, paths alternated by round. Milliseconds.

| path | requests | p50 | p95 | mean |
| --- | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

Overhead of the platform's path: **p50 {p50:.2f} ms** (goal <= {GOAL_MS:.0f} ms: {verdict}), p95 {p95:.2f} ms.
Without a token the same request is refused {refused}.
"""
    print(body)
    write_section(SECTION, body)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--proxy-server"]:
        proxy_server(argv[1], int(argv[2]), argv[3], argv[4])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.models")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    return 0 if run(args.requests, args.rounds) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
