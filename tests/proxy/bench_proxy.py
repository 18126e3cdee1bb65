"""Benchmark, not a test (pytest does not collect it): requests/s through LabProxy against peers.

    .venv/bin/python -m tests.proxy.bench_proxy [--duration 10] [--chp PATH] [--variants lean,httpx]

Same upstream for every row: a raw ASGI app (100-byte answers; 64 MiB for throughput) under uvicorn,
on a unix socket for LabProxy and on TCP for the direct row and configurable-http-proxy. Each proxy is a
separate uvicorn process (one event loop, access log off); load from `wrk`. Variants: `lean` is LabProxy
as shipped (httptools client); `httpx` and `aiohttp` swap only the upstream client (aiohttp must be on
PYTHONPATH), to justify the choice.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datalabs.proxy import ActivityRecorder, CachedAuthenticator, LabProxy, MemoryRouteTable, Route
from datalabs.proxy.headers import request_headers, response_headers

SMALL = b"x" * 100
BIG = 64 * 2**20
CHUNK = b"b" * 2**20
TOKEN = "alice-token"


async def upstream_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/big"):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % BIG)]}
        )
        for _ in range(BIG // len(CHUNK)):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"100")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": SMALL})


class _User:
    name = "alice"


class _Principal:
    user = _User()
    scopes = frozenset({"all"})


def _authenticator() -> CachedAuthenticator:
    """The platform authenticator with its cache primed: the hot path (a cache hit) is what we measure."""
    import hashlib

    auth = CachedAuthenticator(sessions=None, ttl=math.inf)  # type: ignore[arg-type]
    auth._cache[hashlib.sha256(f"token:{TOKEN}".encode()).digest()] = (math.inf, _Principal())
    return auth


class _ClientProxy(LabProxy):
    """LabProxy with the upstream client swapped (for comparison only)."""

    async def _http(self, scope, receive, send) -> None:
        route = await self.admit(scope)
        headers, _ = request_headers(scope, route)
        status, raw, chunks, close = await self._forward(route, scope, headers)
        host = dict(scope["headers"]).get(b"host")
        out = response_headers(raw, route, host, f"/datalabs/{route.lab_id}/".encode())
        await send({"type": "http.response.start", "status": status, "headers": out})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        await close()


class HttpxProxy(_ClientProxy):
    async def _forward(self, route, scope, headers):
        import httpx

        client = getattr(self, "_client", None)
        if client is None:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            transport = httpx.AsyncHTTPTransport(uds=route.socket, limits=limits)
            client = self._client = httpx.AsyncClient(transport=transport, timeout=None)
        url = "http://lab" + scope["path"]
        request = client.build_request(scope["method"], url, headers=headers)
        response = await client.send(request, stream=True)
        return response.status_code, response.headers.raw, response.aiter_raw(), response.aclose


class AiohttpProxy(_ClientProxy):
    async def _forward(self, route, scope, headers):
        import aiohttp

        session = getattr(self, "_session", None)
        if session is None:
            connector = aiohttp.UnixConnector(path=route.socket, limit=64)
            session = self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        hdrs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        response = await session.request(scope["method"], "http://lab" + scope["path"], headers=hdrs)
        raw = [(k.lower(), v) for k, v in response.raw_headers]

        async def chunks():
            async for chunk in response.content.iter_any():
                yield chunk

        async def close():
            response.release()

        return response.status, raw, chunks(), close


def proxy_app() -> LabProxy:
    """uvicorn --factory entry: the proxy variant named by BENCH_VARIANT, to the lab on BENCH_UDS."""
    route = Route(
        "lab1", "alice", socket=os.environ["BENCH_UDS"], headers={"Authorization": "token " + "s" * 48}
    )
    cls = {"lean": LabProxy, "httpx": HttpxProxy, "aiohttp": AiohttpProxy}[os.environ["BENCH_VARIANT"]]
    return cls(MemoryRouteTable({"lab1": route}), _authenticator(), on_activity=ActivityRecorder())


# -- driver -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _uvicorn(target: str, *bind: str, env: dict | None = None, factory: bool = False) -> subprocess.Popen:
    args = [sys.executable, "-m", "uvicorn", target, *bind, "--log-level", "warning", "--no-access-log"]
    args += ["--loop", "uvloop", "--http", "httptools", *(["--factory"] if factory else [])]
    return subprocess.Popen(args, env={**os.environ, **(env or {})})


def _wait_http(url: str, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, trust_env=False).status_code
                < 500
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (robust to other load on a shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, connections: int, duration: int, pid: int) -> dict[str, float]:
    args = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {TOKEN}",
    ]
    cpu = _cpu_seconds(pid)
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    cpu = _cpu_seconds(pid) - cpu
    requests = int(re.search(r"(\d+) requests in", out)[1])
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": float(p50[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50[2]],
        "mb_s": float(transfer[1]) * {"B": 1e-6, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[transfer[2]],
        "cpu_us": cpu / max(requests, 1) * 1e6,
        "bad": int(errors[1]) if errors else 0,
    }


def _measure(base: str, pid: int, duration: int) -> dict[str, float]:
    small, big = f"{base}/datalabs/lab1/hello", f"{base}/datalabs/lab1/big"
    r10, r50, big4 = (
        _wrk(small, 10, duration, pid),
        _wrk(small, 50, duration, pid),
        _wrk(big, 4, duration, pid),
    )
    return {
        "rps10": r10["rps"],
        "rps50": r50["rps"],
        "p50": r10["p50_ms"],
        "cpu_us": r10["cpu_us"],
        "mb_s": big4["mb_s"],
        "bad": r10["bad"] + r50["bad"] + big4["bad"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--variants", default="lean,httpx")
    parser.add_argument("--chp", default="", help="path to configurable-http-proxy, to compare with")
    options = parser.parse_args()
    procs: list[subprocess.Popen] = []
    targets: dict[str, tuple[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        uds = str(Path(tmp) / "lab.sock")
        try:
            procs.append(_uvicorn("tests.proxy.bench_proxy:upstream_app", "--uds", uds))
            port = _free_port()
            procs.append(_uvicorn("tests.proxy.bench_proxy:upstream_app", "--port", str(port)))
            direct = f"http://127.0.0.1:{port}"
            targets["direct to upstream (uvicorn, TCP)"] = (direct, procs[-1].pid)
            for variant in options.variants.split(","):
                port = _free_port()
                env = {"BENCH_UDS": uds, "BENCH_VARIANT": variant}
                procs.append(
                    _uvicorn("tests.proxy.bench_proxy:proxy_app", "--port", str(port), env=env, factory=True)
                )
                targets[f"LabProxy, {variant} upstream client"] = (f"http://127.0.0.1:{port}", procs[-1].pid)
            if options.chp:
                port, api = _free_port(), _free_port()
                args = [options.chp, "--ip", "127.0.0.1", "--port", str(port), "--api-port", str(api)]
                procs.append(subprocess.Popen([*args, "--default-target", direct, "--log-level", "error"]))
                targets["configurable-http-proxy (node)"] = (f"http://127.0.0.1:{port}", procs[-1].pid)
            for base, _ in targets.values():
                _wait_http(base + "/datalabs/lab1/hello")
                _wrk(base + "/datalabs/lab1/hello", 10, 2, os.getpid())  # warm-up
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for round_ in range(options.rounds):
                for name, (base, pid) in targets.items():
                    results[name].append(_measure(base, pid, options.duration))
                    print(f"round {round_ + 1} {name}: {results[name][-1]}", flush=True)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
    _report(results)


def _report(results: dict[str, list[dict[str, float]]]) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    direct = next(iter(results))
    print("\n| path | req/s c=10 | req/s c=50 | p50 c=10 ms | CPU µs/req (its process) | 64 MiB MB/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in results:
        bad = sum(r["bad"] for r in results[name])
        ratio = f" ({med(name, 'rps10') / med(direct, 'rps10'):.2f}× direct)" if name != direct else ""
        cells = [f"{med(name, 'rps10'):,.0f}{ratio}", f"{med(name, 'rps50'):,.0f}", f"{med(name, 'p50'):.2f}"]
        cells += [f"{med(name, 'cpu_us'):.0f}", f"{med(name, 'mb_s'):,.0f}"]
        print(f"| {name}{f' ({bad} non-2xx!)' if bad else ''} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
