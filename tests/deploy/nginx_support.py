"""A real Debian nginx for the tests: the site deploy/render.py writes, inside a main configuration of the
test's own (private prefix, pid, logs and temp dirs, loopback ports, in the foreground)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from deploy.render import render

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def available() -> bool:
    return Path(NGINX).is_file()


def missing(what: str) -> None:
    """Skip for lack of `what`, except under `make test` (which installs it), where that is a failure."""
    if os.environ.get("DATALABS_REQUIRE_PG") == "1":  # set by `make test`
        pytest.fail(f"{what} (make test installs it)")
    pytest.skip(what)


def require() -> None:
    """Skip without nginx, except under `make test` (which installs it), where that is a failure."""
    if available():
        return
    if os.environ.get("DATALABS_REQUIRE_PG") == "1":  # set by `make test`, which installs nginx too
        pytest.fail("nginx is not installed (scripts/install-system-packages.sh test installs it)")
    pytest.skip("nginx is not installed")


def main_config(prefix: Path, site: Path) -> Path:
    """nginx.conf for a private instance that includes `site` in its http block, as Debian's does."""
    for sub in ("logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must reach the private temp dirs
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {prefix}/logs/access.log;\n"
        f"    client_body_temp_path {prefix}/body;\n    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
        f"    include {site};\n"
        "}\n"
    )
    return conf


def check(conf: Path) -> subprocess.CompletedProcess:
    """`nginx -t` of the configuration `conf` (its output is on stderr)."""
    return subprocess.run(
        [NGINX, "-t", "-p", str(conf.parent), "-c", str(conf)], capture_output=True, text=True, timeout=30
    )


def write_site(prefix: Path, replicas: list[str], port: int, **options) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / "datalabs.conf"
    site.write_text(render(["localhost"], "lab.localhost", replicas, listen=f"127.0.0.1:{port}", **options))
    return site


@contextmanager
def running_nginx(prefix: Path, replicas: list[str], port: int, **options) -> Iterator[subprocess.Popen]:
    """nginx in the foreground on 127.0.0.1:`port` in front of `replicas`, stopped on exit."""
    conf = main_config(prefix, write_site(prefix, replicas, port, **options))
    checked = check(conf)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nginx exited with {proc.returncode}: {proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not listen in 30 s")
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
