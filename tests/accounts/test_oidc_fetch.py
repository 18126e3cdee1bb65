"""Discovery and JWKS are fetched bounded: a huge, trickling or stalled answer ends the attempt with a
clear error instead of hanging the login or filling memory."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from datalabs.accounts import oidc


class Hostile(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if self.path.startswith("/huge"):
                self.wfile.write(b'{"issuer": "' + b"x" * (5 * 1024 * 1024) + b'"}')
            elif self.path.startswith("/slow"):
                self.wfile.write(b'{"a": "')
                for _ in range(200):  # a byte every 0.1 s: each read is quick, the whole is not
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif self.path.startswith("/stall"):
                self.wfile.flush()
                time.sleep(20)
            elif self.path.startswith("/list"):
                self.wfile.write(b"[1, 2]")
            else:
                self.wfile.write(b'{"ok": true}')
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def short_bounds(monkeypatch):
    monkeypatch.setattr(oidc, "DEADLINE", 1.0)
    monkeypatch.setattr(oidc, "FETCH_TIMEOUT", httpx.Timeout(1.0, connect=1.0))


def test_a_good_answer_is_read(hostile):
    assert oidc.fetch_json(hostile + "/ok") == {"ok": True}


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/huge", "larger than"),
        ("/slow", "too slow"),
        ("/stall", "ReadTimeout"),
        ("/list", "not a JSON object"),
    ],
)
def test_hostile_answers_end_the_fetch(hostile, path, words):
    with pytest.raises(oidc.OidcError) as caught:
        oidc.fetch_json(hostile + path)
    assert words in caught.value.message and caught.value.code == "oidc_unavailable"


def test_login_with_a_huge_discovery_answers_an_error_page(tmp_path, db_url, hostile):
    from fastapi.testclient import TestClient

    from datalabs.app import create_app
    from datalabs.config import Settings

    provider = {"name": "big", "issuer": hostile + "/huge", "client_id": "x"}
    settings = Settings(
        home=tmp_path / "home", db={"url": db_url}, auth={"secret_key": "s"}, oidc={"providers": [provider]}
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        page = client.get("/login/oidc/big")
    assert page.status_code == 401 and "larger than" in page.text
    assert "Sign in with big" in page.text
