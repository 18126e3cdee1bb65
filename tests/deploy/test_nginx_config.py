"""deploy/render.py and the nginx site it writes, checked by the real nginx (`nginx -t`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from datalabs import limits
from deploy import render as site
from tests.deploy import nginx_support

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ["127.0.0.1:8001", "127.0.0.1:8002"]


def _checked(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    nginx_support.require()
    path = tmp_path / "datalabs.conf"
    path.write_text(text)
    return nginx_support.check(nginx_support.main_config(tmp_path, path))


def test_nginx_accepts_the_rendered_site(tmp_path):
    checked = _checked(
        tmp_path, site.render(["localhost"], "lab.localhost", REPLICAS, listen="127.0.0.1:18080")
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_nginx_accepts_the_tls_site(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
    )  # fmt: skip
    if made.returncode != 0:
        nginx_support.missing(f"openssl could not make a certificate: {made.stderr.decode()}")
    text = site.render(
        ["datalabs.example.org"], "lab.example.org", REPLICAS, tls_cert=str(cert), tls_key=str(key)
    )
    assert "listen 443 ssl;" in text and "return 301 https://$host$request_uri;" in text
    checked = _checked(tmp_path, text)
    assert checked.returncode == 0, checked.stderr


def test_nginx_check_fails_for_a_broken_site(tmp_path):
    """The check above is real: a site missing one semicolon is refused."""
    text = site.render(["localhost"], "lab.localhost", REPLICAS, listen="127.0.0.1:18080")
    broken = text.replace("proxy_buffering off;", "proxy_buffering off", 1)
    checked = _checked(tmp_path, broken)
    assert checked.returncode != 0
    assert "datalabs.conf" in checked.stderr


def test_site_has_every_replica_the_platform_and_the_lab_origins():
    text = re.sub(
        r"#.*", "", site.render(["datalabs.example.org"], "lab.example.org", REPLICAS + ["[::1]:8003"])
    )
    assert not re.search(r"@[A-Z_]+@", text)  # every field filled in
    servers = re.findall(r"^\s*server (\S+) max_fails=1 fail_timeout=10s;$", text, re.M)
    assert servers == REPLICAS + ["[::1]:8003"]
    assert re.findall(r"server_name ([^;]+);", text) == ["datalabs.example.org", "*.lab.example.org"]
    assert "least_conn;" in text and "ip_hash" not in text and "sticky" not in text
    # The app tells a lab's origin from the platform's by Host, port included.
    assert text.count("proxy_set_header Host $http_host;") == 2
    assert "proxy_next_upstream error timeout;" in text and "non_idempotent" not in text


def test_body_limits_match_the_apps():
    """Nginx never refuses a body the app would take: its limit is the largest non-streamed route's
    (limits.SOURCES), and none where the app streams (workspaces, labs)."""
    text = re.sub(r"#.*", "", site.render(["localhost"], "lab.localhost", REPLICAS))
    sizes = re.findall(r"client_max_body_size (\S+);", text)
    assert sizes[0] == f"{limits.SOURCES // limits.MiB}m"
    assert limits.SOURCES % limits.MiB == 0
    for location in ("/api/v1/workspaces/", "/workspace/", "/datalabs/"):
        block = text.split(f"location {location} {{", 1)[1].split("}", 1)[0]
        assert "client_max_body_size 0;" in block, location
    lab_server = text.split("server_name *.lab.localhost;", 1)[1]
    assert "client_max_body_size 0;" in lab_server.split("location", 1)[0]


@pytest.mark.parametrize(
    ("names", "domain", "replicas", "options"),
    [
        (["example.org; include /etc/passwd"], "lab.example.org", REPLICAS, {}),
        (["example.org"], "lab.example.org { }", REPLICAS, {}),
        (["example.org"], "*.lab.example.org", REPLICAS, {}),
        ([], "lab.example.org", REPLICAS, {}),
        (["example.org"], "lab.example.org", [], {}),
        (["example.org"], "lab.example.org", ["127.0.0.1:8001;"], {}),
        (["example.org"], "lab.example.org", ["127.0.0.1:99999"], {}),
        (["example.org"], "lab.example.org", ["127.0.0.1"], {}),
        (["example.org"], "lab.example.org", REPLICAS, {"tls_cert": "/etc/ssl/c.pem"}),
        (["example.org"], "lab.example.org", REPLICAS, {"tls_cert": "c.pem", "tls_key": "k.pem"}),
        (["example.org"], "lab.example.org", REPLICAS, {"tls_cert": "/c.pem;x", "tls_key": "/k.pem"}),
        (["example.org"], "lab.example.org", REPLICAS, {"long_timeout": "1 h"}),
        (["example.org"], "lab.example.org", REPLICAS, {"fail_timeout": "10s;"}),
        (["example.org"], "lab.example.org", REPLICAS, {"max_fails": 0}),
        (["example.org"], "lab.example.org", REPLICAS, {"listen": "80; return 200"}),
    ],
)
def test_render_refuses_what_is_not_a_safe_nginx_word(names, domain, replicas, options):
    with pytest.raises(ValueError):
        site.render(names, domain, replicas, **options)


def test_render_command_line(tmp_path):
    argv = [sys.executable, str(ROOT / "deploy" / "render.py"), "--server-name", "localhost"]
    argv += ["--lab-domain", "lab.localhost", "--replica", "127.0.0.1:8001", "--listen", "8080"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == site.render(["localhost"], "lab.localhost", ["127.0.0.1:8001"], listen="8080")
    refused = subprocess.run([*argv[:-1], "8080;"], capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and "--listen" in refused.stderr and refused.stdout == ""
