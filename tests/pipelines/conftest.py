"""Pipeline test fixtures: a real SMTP server (aiosmtpd), a real HTTP webhook receiver, settings with a
fast-polling in-process worker, and helpers to register pipelines and wait for runs."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from datalabs.config import Settings
from tests.live import free_port

HELLO = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo "== $0 ==" > banner.txt; echo "made the banner"']
arguments: [$(inputs.text)]
inputs:
  text: {type: string, default: hello}
outputs:
  banner: {type: File, outputBinding: {glob: banner.txt}}
"""
FAIL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo "calibration table missing for $0" >&2; exit 3']
arguments: [$(inputs.station)]
inputs:
  station: string
outputs: []
"""
SLEEP = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo started; sleep $0; echo slept > done.txt']
arguments: [$(inputs.seconds)]
inputs:
  seconds: int
outputs:
  done: {type: File, outputBinding: {glob: done.txt}}
"""
COUNT = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [wc, -l]
stdout: lines.txt
inputs:
  data: {type: File, inputBinding: {position: 1}}
outputs:
  lines: {type: stdout}
"""


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class Receiver:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        received = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def settings(tmp_path, db_url, smtp):
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "test-secret"},
        pipelines={
            "poll_interval": 0.2,
            "lease": 6,
            "scheduler_interval": 3600,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "webhook_secret": "hook-secret",
            "webhook_allow_networks": ["127.0.0.0/8"],  # the test receiver
        },
    )


def register(client, name: str, cwl: str, **extra) -> dict:
    r = client.post("/api/v1/pipelines", json={"name": name, "cwl": cwl, "filename": f"{name}.cwl", **extra})
    assert r.status_code == 201, r.text
    return r.json()


def wait_run(client, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["state"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish: {run}")


def sse_events(text: str) -> list[tuple[str, dict]]:
    events, kind = [], ""
    for line in text.splitlines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            events.append((kind, json.loads(line.split(":", 1)[1])))
    return events
