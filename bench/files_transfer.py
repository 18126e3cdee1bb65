"""Workspace file transfer: a 2 GiB upload and download through the API beside Debian's nginx receiving
(WebDAV PUT) and serving the same file in the same run, with the server's peak RSS growth; and the p50 of
paginated listings of a folder of 100,000 files.

Both sides are driven by curl over loopback (one connection, the whole file); our server streams the
upload to a temporary file, fsyncs it (the default; nginx does not) and renames it into place.

    .venv/bin/python -m bench.files_transfer [--size-gib 2] [--files 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import clean_env, datalabs, free_port, machine, revision, serve, write_section

SECTION = "files-transfer"
console = Console()
NGINX_CONF = """\
daemon off;
worker_processes 1;
user root;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    client_max_body_size 0;
    client_body_temp_path {prefix}/body;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ dav_methods PUT DELETE; create_full_put_path on; }}
    }}
}}
"""


def make_file(path: Path, size: int) -> None:
    block = os.urandom(64 << 20)
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)


def curl(args: list[str]) -> float:
    """Bytes per second curl measured."""
    out = subprocess.run(["curl", "-sS", "--fail", *args], capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def upload(url: str, path: Path, headers: dict[str, str]) -> float:
    hdr = [x for k, v in headers.items() for x in ("-H", f"{k}: {v}")]
    return curl([*hdr, "-T", str(path), "-o", "/dev/null", "-w", "%{speed_upload}", url])


def download(url: str, headers: dict[str, str]) -> float:
    hdr = [x for k, v in headers.items() for x in ("-H", f"{k}: {v}")]
    return curl([*hdr, "-o", "/dev/null", "-w", "%{speed_download}", url])


class PeakRss:
    """Samples a process's resident memory every 20 ms; `growth` is the peak above the first sample."""

    def __init__(self, pid: int):
        self.pid = pid
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.base)


@contextmanager
def nginx(root: Path, prefix: Path):
    port = free_port()
    (prefix / "body").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=root))
    proc = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def listing_p50(base: str, headers: dict[str, str], total: int, runs: int = 40) -> tuple[float, float]:
    """p50 and p90 (ms) of 1,000-item pages at random offsets of the big folder."""
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for _ in range(runs):
            offset = random.randrange(0, max(total - 1000, 1))
            start = time.perf_counter()
            r = client.get("/api/v1/workspaces/me/files/many", params={"offset": offset, "limit": 1000})
            times.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200 and len(r.json()["items"]) == 1000 and r.json()["total"] == total
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def run(size_gib: float = 2, files: int = 100_000) -> bool:
    if shutil.which("nginx") is None:
        console.print("[red]nginx is not installed: run scripts/install-system-packages.sh test[/]")
        return False
    size = int(size_gib * (1 << 30))
    with tempfile.TemporaryDirectory(prefix="bench-files-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        home, source, www = tmp / "home", tmp / "source.bin", tmp / "www"
        home.mkdir()
        www.mkdir()
        console.print(f"writing a {size_gib:g} GiB test file ...")
        make_file(source, size)
        env = clean_env(DATALABS_HOME=str(home))
        datalabs("admin", "create-user", "bench", "--password", "long-enough-pw", env=env)
        token = datalabs("admin", "create-token", "bench", env=env)
        auth = {"Authorization": f"Bearer {token}"}
        rows = []
        with serve(env, tmp / "server.log") as server:
            url = f"{server.url}/api/v1/workspaces/me/files/big/source.bin"
            with PeakRss(server.pid) as up_rss:
                ours_up = upload(url, source, auth)
            with PeakRss(server.pid) as down_rss:
                ours_down = download(url, auth)
            assert (home / "workspaces/users/bench/big/source.bin").stat().st_size == size
            with nginx(www, tmp / "nginx") as nginx_url:
                nginx_up = upload(f"{nginx_url}/big/source.bin", source, {})
                nginx_down = download(f"{nginx_url}/big/source.bin", {})
            assert (www / "big" / "source.bin").stat().st_size == size
            rows += [
                ("upload", ours_up, nginx_up, up_rss.growth),
                ("download", ours_down, nginx_down, down_rss.growth),
            ]
            many = home / "workspaces/users/bench/many"
            many.mkdir()
            for i in range(files):
                os.close(os.open(many / f"obs_{i:06d}.fits", os.O_CREAT | os.O_WRONLY, 0o644))
            p50, p90 = listing_p50(server.url, auth, files)
    table = Table(title=f"{size_gib:g} GiB transfer over loopback (curl), datalabs vs nginx")
    for col in ("", "datalabs MB/s", "nginx MB/s", "ratio", "server RSS growth"):
        table.add_column(col)
    lines = []
    for what, ours, peer, rss in rows:
        ratio = ours / peer if peer else 0
        table.add_row(
            what, f"{ours / 1e6:.0f}", f"{peer / 1e6:.0f}", f"{ratio:.2f}x", f"{rss / 2**20:.1f} MiB"
        )
        lines.append(
            f"| {what} | {ours / 1e6:.0f} | {peer / 1e6:.0f} | {ratio:.2f}x | {rss / 2**20:.1f} MiB |"
        )
    console.print(table)
    console.print(f"listing a folder of {files:,} files, 1,000 per page: p50 {p50:.0f} ms, p90 {p90:.0f} ms")
    write_section(
        SECTION,
        f"""## Workspace files: {size_gib:g} GiB upload/download beside nginx; {files:,}-file listing

Command: `.venv/bin/python -m bench.files_transfer` (part of `make bench`). Machine: {machine()}.
Date: {time.strftime("%Y-%m-%d")}. Revision: {revision()}.

One curl transfer of the whole file over loopback each way; nginx (Debian) receives with WebDAV PUT and
serves with sendfile, from the same disk, in the same run. Our upload streams to a temporary file,
fsyncs it (default `workspaces.fsync`; nginx does not) and renames it into place. Goal: >= 0.5x nginx,
peak RSS growth < 64 MiB.

| transfer | datalabs MB/s | nginx MB/s | ratio | server peak RSS growth |
| --- | --- | --- | --- | --- |
{chr(10).join(lines)}

Listing a folder of {files:,} files through the API, 1,000 entries per page at random offsets
(40 requests): **p50 {p50:.0f} ms**, p90 {p90:.0f} ms (goal: p50 <= 200 ms).
""",
    )
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gib", type=float, default=2)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    raise SystemExit(0 if run(args.size_gib, args.files) else 1)
