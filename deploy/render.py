#!/usr/bin/env python3
"""Render deploy/nginx/datalabs.conf (a template, fields between @ signs) into an nginx site for N replicas.

Standard library only, so it runs on the nginx host without Datalabs installed:

    python3 deploy/render.py --server-name datalabs.example.org --lab-domain lab.example.org \\
        --replica 127.0.0.1:8001 --replica 127.0.0.1:8002 \\
        --tls-cert /etc/ssl/certs/datalabs.pem --tls-key /etc/ssl/private/datalabs.key \\
        > /etc/nginx/sites-available/datalabs

Without --tls-cert/--tls-key the site listens on plain HTTP (--listen, default 80): for a TLS-terminating
proxy in front of it, or for tests on loopback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "datalabs.conf"
_FIELD = re.compile(r"@([A-Z_]+)@")
_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")
_REPLICA = re.compile(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})|unix:/[^\s;{}]+")
_DURATION = re.compile(r"[0-9]+(ms|s|m|h|d)?")


def render(
    server_names: list[str],
    lab_domain: str,
    replicas: list[str],
    *,
    listen: str = "80",
    tls_cert: str = "",
    tls_key: str = "",
    max_fails: int = 1,
    fail_timeout: str = "10s",
    long_timeout: str = "1h",
    lab_read_timeout: str = "60s",
) -> str:
    """The site's text. Raises ValueError for anything that would not be a valid, safe nginx word (the
    values end up in a configuration file: no spaces, semicolons or braces may slip in)."""
    if not server_names or not all(_HOST.fullmatch(n) for n in server_names):
        raise ValueError(f"server names must be host names: {server_names!r}")
    if not _HOST.fullmatch(lab_domain) or lab_domain.startswith("*"):
        raise ValueError(f"the labs' domain must be a host name such as lab.example.org: {lab_domain!r}")
    if not replicas:
        raise ValueError("at least one replica (host:port) is needed")
    for replica in replicas:
        match = _REPLICA.fullmatch(replica)
        if not match or (match.group(2) and not 0 < int(match.group(2)) < 65536):
            raise ValueError(f"a replica is host:port or unix:/path, not {replica!r}")
    timeouts = (
        ("fail_timeout", fail_timeout),
        ("long_timeout", long_timeout),
        ("lab_read_timeout", lab_read_timeout),
    )
    for name, value in timeouts:
        if not _DURATION.fullmatch(value):
            raise ValueError(f"{name} must be an nginx time such as 10s or 1h, not {value!r}")
    if max_fails < 1:
        raise ValueError("max_fails must be at least 1")
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("give both --tls-cert and --tls-key, or neither")
    for path in (tls_cert, tls_key):
        if path and not re.fullmatch(r"/[^\s;{}'\"]+", path):
            raise ValueError(f"certificate and key are absolute paths without spaces: {path!r}")
    if not re.fullmatch(r"(\[[0-9A-Fa-f:]+\]:|[0-9.]+:)?[0-9]{1,5}", listen):
        raise ValueError(f"--listen is a port or address:port, not {listen!r}")

    if tls_cert:
        port = listen if listen != "80" else "443"
        listen_lines = [
            f"    listen {port} ssl;",
            f"    ssl_certificate {tls_cert};",
            f"    ssl_certificate_key {tls_key};",
        ]
        redirect = (
            "\n# Plain HTTP: to HTTPS, for the platform and every lab.\nserver {\n    listen 80;\n"
            f"    server_name {' '.join(server_names)} *.{lab_domain};\n"
            "    return 301 https://$host$request_uri;\n}"
        )
    else:
        listen_lines, redirect = [f"    listen {listen};"], ""
    fields = {
        "LISTEN": "\n".join(listen_lines),
        "SERVER_NAME": " ".join(server_names),
        "LAB_DOMAIN": lab_domain.rstrip(".").lower(),
        "UPSTREAM_SERVERS": "\n".join(
            f"    server {r} max_fails={max_fails} fail_timeout={fail_timeout};" for r in replicas
        ),
        "MAX_FAILS": str(max_fails),
        "FAIL_TIMEOUT": fail_timeout,
        "LONG_TIMEOUT": long_timeout,
        "LAB_READ_TIMEOUT": lab_read_timeout,
        "TLS_REDIRECT": redirect,
    }
    text = _FIELD.sub(lambda m: fields[m.group(1)], TEMPLATE.read_text())
    return text.rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-name", action="append", required=True, help="the platform's host name")
    parser.add_argument("--lab-domain", required=True, help="labs are served at <lab>.<lab-domain>")
    parser.add_argument("--replica", action="append", required=True, help="host:port of one replica")
    parser.add_argument("--listen", default="80", help="port or address:port (default 80, 443 with TLS)")
    parser.add_argument("--tls-cert", default="")
    parser.add_argument("--tls-key", default="")
    parser.add_argument("--max-fails", type=int, default=1)
    parser.add_argument("--fail-timeout", default="10s", help="how long a failed replica is left alone")
    parser.add_argument("--long-timeout", default="1h", help="idle limit of lab WebSockets and streams")
    parser.add_argument(
        "--lab-read-timeout",
        default="60s",
        help="how long a lab's plain request waits for its answer to begin before nginx retries it on "
        "another replica (a frozen one holds it that long)",
    )
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(
            render(
                args.server_name,
                args.lab_domain,
                args.replica,
                listen=args.listen,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                max_fails=args.max_fails,
                fail_timeout=args.fail_timeout,
                long_timeout=args.long_timeout,
                lab_read_timeout=args.lab_read_timeout,
            )
        )
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
