"""Finding 2 of issue 13: a 521-byte upload took the whole platform down.

Each hostile document goes, as an attacker would send it, to a real `datalabs serve` process: a
"billion laughs" `datalab-meta.yml` in an app-source zip and in an app archive, the same through the
web wizard, a billion-laughs CWL document through every pipeline route, zips with too many entries or
a bomb inside, JSON nested too deep, bodies larger than any route takes, and CWL references to host
files. Each must be answered with a clear 4xx while `/healthz` keeps answering (within 1 s at every
poll) and the server's memory stays bounded (VmRSS and its peak VmHWM under 1.5 GB).
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.labs.test_jupyter import admin
from tests.live import live_process

MAX_RSS = 1536 * 2**20  # bytes: the server must stay below this whatever it is sent
HEALTH_TIMEOUT = 1.0  # /healthz must answer within this while a hostile request is processed
DEADLINE = 90.0  # the hostile request itself must be answered by then (generous: a liveness bound)
PASSWORD = "long-enough-pw"

LOL = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'


def laughs(prefix: str = "", levels: int = 9) -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) strings once expanded, in a few lines."""
    lines = [f"{prefix}l0: &l0 {LOL}"]
    for i in range(1, levels):
        lines.append(f"{prefix}l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


LAUGHS_META = (
    "title: Laughs\nabstract: Nine nested aliases.\ndistribution.license: MIT\n" + laughs() + "laughs: *l8\n"
)
LAUGHS_CWL = (
    "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: echo\ninputs: []\noutputs: []\n"
    '$namespaces: {x: "http://example.org/x#"}\n' + laughs("x:")
)


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def app_archive(meta: str, manifest: str | None = None) -> bytes:
    """An exported app (`datalab-app.json` + one version's sources) holding `meta` as its metadata."""
    manifest = manifest or json.dumps(
        {
            "format": "datalabs-app/1",
            "name": "laughs",
            "base": "jupyterlab",
            "versions": [{"version": "0.1.0-0", "source_ref": "x", "meta": {}}],
        }
    )
    return zip_bytes(
        {"datalab-app.json": manifest, "versions/0.1.0-0/sources/datalab-meta.yml": meta.encode()}
    )


def many_entries_zip(count: int) -> bytes:
    """A zip whose central directory lists `count` (empty) entries, written directly: 47 bytes each."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 1, 0) + b"a"
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
    central += b"a"
    directory = central * count
    offset = len(local)
    zip64_end = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + directory + zip64_end + locator + end


def bomb_zip() -> bytes:
    """datalab-meta.yml plus one member that inflates to 1 GiB of zeros (declared sizes as they are)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("datalab-meta.yml", "title: Bomb\nabstract: x\ndistribution.license: MIT\n")
        with zf.open("zeros.bin", "w", force_zip64=True) as out:
            block = bytes(2**24)
            for _ in range(64):
                out.write(block)
    return buf.getvalue()


# ---- the server and the watch kept on it ------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


@dataclass
class Server:
    url: str
    proc: object
    token: str
    home: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def attack(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        """Run `send` in a thread while polling /healthz and the server's memory; the response to `send`.

        A server past the memory bound, or not answering /healthz in time, is killed at once (this
        machine is shared) and the test fails."""
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["response"] = send()
            except BaseException as exc:  # reported below, in the test's thread
                outcome["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        started = time.monotonic()
        thread.start()
        polls = 0
        with httpx.Client(timeout=HEALTH_TIMEOUT) as health:
            while thread.is_alive():
                rss = _status(self.proc.pid)["VmRSS"]
                if rss > MAX_RSS:
                    self.kill()
                    pytest.fail(f"the server grew to {rss / 2**20:.0f} MiB while parsing (killed)")
                try:
                    t0 = time.monotonic()
                    assert health.get(f"{self.url}/healthz").status_code == 200
                    polls += 1
                except httpx.TimeoutException:
                    self.kill()
                    pytest.fail(f"/healthz did not answer within {HEALTH_TIMEOUT} s (server killed)")
                if time.monotonic() - started > DEADLINE:
                    self.kill()
                    pytest.fail(f"the hostile request was not answered within {DEADLINE:.0f} s (killed)")
                time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
        thread.join()
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        peak = _status(self.proc.pid)["VmHWM"]
        assert peak < MAX_RSS, f"the server's memory peaked at {peak / 2**20:.0f} MiB"
        return outcome["response"]  # type: ignore[return-value]

    def kill(self) -> None:
        """Stop the server at once (the next test starts another)."""
        self.proc.kill()
        self.proc.wait(60)

    def new_app(self, name: str) -> None:
        r = httpx.post(f"{self.url}/api/v1/apps", json={"name": name}, headers=self.auth, timeout=30)
        assert r.status_code == 201, r.text


class Platform:
    """One server for the module, started again if a test had to kill it."""

    def __init__(self, home: Path):
        self.home, self.stack, self.current = home, ExitStack(), None
        admin(home, "create-user", "mallory", "--password", PASSWORD)
        self.token = admin(home, "create-token", "mallory")

    def get(self) -> Server:
        if self.current is None or self.current.proc.poll() is not None:
            self.stack.close()
            url, proc = self.stack.enter_context(live_process(self.home))
            self.current = Server(url, proc, self.token, self.home)
        return self.current


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("bombs"))
    yield platform
    platform.stack.close()


@pytest.fixture
def server(platform: Platform) -> Server:
    return platform.get()


def refused(r: httpx.Response, *codes: str) -> dict:
    """The response is a clear client error in the API's format; returns its `error` object."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert error["message"], error
    if codes:
        assert error["code"] in codes, error
    return error


# ---- billion laughs ----------------------------------------------------------------------------------


def test_billion_laughs_meta_in_source_zip(server: Server):
    assert len(LAUGHS_META.encode()) < 600
    server.new_app("laughs-zip")
    body = zip_bytes({"datalab-meta.yml": LAUGHS_META})
    r = server.attack(
        lambda: httpx.post(
            f"{server.url}/api/v1/apps/laughs-zip/versions",
            files=[("files", ("laughs.zip", body, "application/zip"))],
            headers=server.auth,
            timeout=DEADLINE + 30,
        )
    )
    error = refused(r, "invalid_meta")
    assert "datalab-meta.yml" in error["message"] and "alias" in error["message"]
    assert re.search(r"line \d+", error["message"]), error["message"]


def test_billion_laughs_meta_as_plain_upload(server: Server):
    server.new_app("laughs-file")
    r = server.attack(
        lambda: httpx.post(
            f"{server.url}/api/v1/apps/laughs-file/versions",
            files=[("files", ("datalab-meta.yml", LAUGHS_META.encode(), "text/yaml"))],
            headers=server.auth,
            timeout=DEADLINE + 30,
        )
    )
    refused(r, "invalid_meta")


def test_billion_laughs_meta_in_app_import(server: Server):
    body = app_archive(LAUGHS_META)
    r = server.attack(
        lambda: httpx.post(
            f"{server.url}/api/v1/apps/import",
            files=[("archive", ("laughs.datalab.zip", body, "application/zip"))],
            headers=server.auth,
            timeout=DEADLINE + 30,
        )
    )
    refused(r, "invalid_meta")
    assert httpx.get(f"{server.url}/api/v1/apps/laughs", headers=server.auth).status_code == 404


def test_app_import_manifest_nested_too_deep(server: Server):
    deep = "[" * 200_000 + "]" * 200_000
    manifest = '{"format": "datalabs-app/1", "name": "deep", "versions": ' + deep + "}"
    body = app_archive("title: x\n", manifest)
    r = server.attack(
        lambda: httpx.post(
            f"{server.url}/api/v1/apps/import",
            files=[("archive", ("deep.datalab.zip", body, "application/zip"))],
            headers=server.auth,
            timeout=DEADLINE + 30,
        )
    )
    assert "datalab-app.json" in refused(r)["message"]


def _web_login(server: Server) -> httpx.Client:
    web = httpx.Client(base_url=server.url, headers={"Accept": "text/html"}, timeout=DEADLINE + 30)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', web.get("/login").text).group(1)
    r = web.post("/login", data={"username": "mallory", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    return web


def _csrf(web: httpx.Client, page: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', web.get(page).text).group(1)


def test_billion_laughs_meta_through_the_web_wizard(server: Server):
    """Upload the zip in the "Create datalab" wizard, then build it from the metadata form."""
    server.new_app("laughs-web")
    web = _web_login(server)
    body = zip_bytes({"datalab-meta.yml": LAUGHS_META})
    token = _csrf(web, "/appstore/laughs-web/sources")
    r = server.attack(
        lambda: web.post(
            "/appstore/laughs-web/sources/upload",
            data={"csrf_token": token},
            files=[("files", ("laughs.zip", body, "application/zip"))],
        )
    )
    assert r.status_code in (303, 422), r.text[:300]
    token = _csrf(web, "/appstore/laughs-web/metadata")
    fields = {"title": "Laughs", "abstract": "x", "distribution.license": "MIT", "csrf_token": token}
    r = server.attack(lambda: web.post("/appstore/laughs-web/metadata", data=fields))
    assert r.status_code == 422 and "alias" in r.text, r.text[:300]


@pytest.mark.parametrize("route", ["create", "validate", "version"])
def test_billion_laughs_cwl(server: Server, route: str):
    base = f"{server.url}/api/v1/pipelines"
    if route == "version":
        good = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: echo\ninputs: []\noutputs: []\n"
        r = httpx.post(base, json={"name": "lol", "cwl": good}, headers=server.auth, timeout=60)
        assert r.status_code == 201, r.text
    url, body = {
        "create": (base, {"name": "laughs", "cwl": LAUGHS_CWL, "filename": "laughs.cwl"}),
        "validate": (f"{base}/validate", {"cwl": LAUGHS_CWL, "filename": "laughs.cwl"}),
        "version": (f"{base}/lol/versions", {"version": "2", "cwl": LAUGHS_CWL, "filename": "laughs.cwl"}),
    }[route]
    r = server.attack(lambda: httpx.post(url, json=body, headers=server.auth, timeout=DEADLINE + 30))
    error = refused(r)
    assert error["message"].startswith("laughs.cwl:") and "alias" in error["message"], error


# ---- archives and bodies -------------------------------------------------------------------------


def test_zip_with_millions_of_entries(server: Server):
    """4 million entries in a 190 MB zip: refused from the archive's end record, before its directory
    is read (reading it would cost the server gigabytes)."""
    server.new_app("many")
    body = many_entries_zip(4_000_000)
    routes = [
        ("/api/v1/apps/many/versions", "files"),
        ("/api/v1/apps/import", "archive"),
    ]
    for path, field in routes:
        r = server.attack(
            lambda path=path, field=field: httpx.post(
                f"{server.url}{path}",
                files=[(field, ("many.zip", body, "application/zip"))],
                headers=server.auth,
                timeout=DEADLINE + 30,
            )
        )
        assert "entries" in refused(r, "too_many_files")["message"]
    web = _web_login(server)
    token = _csrf(web, "/appstore/many/sources")
    r = server.attack(
        lambda: web.post(
            "/appstore/many/sources/upload",
            data={"csrf_token": token},
            files=[("files", ("many.zip", body, "application/zip"))],
        )
    )
    assert r.status_code == 413 and "entries" in r.text, r.text[:300]


def test_zip_bomb_through_every_zip_route(server: Server):
    server.new_app("bomb")
    body = bomb_zip()
    assert len(body) < 8 * 2**20
    for path, field in [("/api/v1/apps/bomb/versions", "files"), ("/api/v1/apps/import", "archive")]:
        r = server.attack(
            lambda path=path, field=field: httpx.post(
                f"{server.url}{path}",
                files=[(field, ("bomb.zip", body, "application/zip"))],
                headers=server.auth,
                timeout=DEADLINE + 30,
            )
        )
        refused(r, "zip_bomb")
    web = _web_login(server)
    token = _csrf(web, "/appstore/bomb/sources")
    r = server.attack(
        lambda: web.post(
            "/appstore/bomb/sources/upload",
            data={"csrf_token": token},
            files=[("files", ("bomb.zip", body, "application/zip"))],
        )
    )
    assert r.status_code == 413 and "zip bomb" in r.text, r.text[:300]


def _raw_post(url: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    """POST by hand: `headers` may announce more than is sent (a body that never ends)."""
    host = urlsplit(url)
    with socket.create_connection((host.hostname, host.port), timeout=DEADLINE) as s:
        head = f"POST {path} HTTP/1.1\r\nHost: {host.netloc}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        s.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return httpx.Response(int(data.split(b" ", 2)[1]), content=data.split(b"\r\n\r\n", 1)[1])


def _length(data: bytes) -> int:
    match = re.search(rb"(?i)content-length: (\d+)", data)
    return int(match.group(1)) if match else 0


def test_announced_huge_upload_is_refused_before_it_is_read(server: Server):
    server.new_app("huge")
    headers = {
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "multipart/form-data; boundary=xyz",
        "Content-Length": str(2**40),
    }
    for path in ("/api/v1/apps/huge/versions", "/api/v1/apps/import"):
        r = server.attack(lambda path=path: _raw_post(server.url, path, headers, b"--xyz\r\n"))
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text[:300]


def test_json_body_larger_than_any_document(server: Server):
    """9 MiB of JSON (streamed, no Content-Length) to a JSON route: 413 in the API's error format."""

    def chunks() -> Iterator[bytes]:
        yield b'{"cwl": "'
        for _ in range(9 * 16):
            yield b"x" * 65536
        yield b'"}'

    r = server.attack(
        lambda: httpx.post(
            f"{server.url}/api/v1/pipelines/validate",
            content=chunks(),
            headers={**server.auth, "Content-Type": "application/json"},
            timeout=DEADLINE,
        )
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text[:300]


def test_streamed_workspace_upload_is_not_limited(server: Server):
    """The workspace upload streams to disk within the quota: larger than the JSON limit still works."""
    data = b"y" * (9 * 2**20)
    r = httpx.put(f"{server.url}/api/v1/workspaces/me/files/big.bin", content=data, headers=server.auth)
    assert r.status_code in (200, 201), r.text


# ---- CWL references outside the document ----------------------------------------------------------


def _host_references(home: Path) -> dict[str, str]:
    secret = home / "secret_key"
    step = "steps:\n  s:\n    run: {}\n    in: []\n    out: []\n"
    workflow = "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\n"
    tool = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\noutputs: []\n"
    return {
        "$include": tool
        + "inputs: []\nrequirements:\n  InitialWorkDirRequirement:\n    listing:\n"
        + f"      - entryname: k\n        entry:\n          $include: {secret}\n",
        "$import": tool + f"inputs:\n  $import: file://{secret}\n",
        "run": workflow + step.format("../../../../../../../../.." + str(home / "x.cwl")),
        "http": workflow + step.format("http://127.0.0.1:9/x.cwl"),
        "location": tool
        + f"inputs:\n  f:\n    type: File\n    default: {{class: File, location: {secret}}}\n",
    }


@pytest.mark.parametrize("kind", ["$include", "$import", "run", "http", "location"])
def test_cwl_references_outside_the_document_are_refused(server: Server, kind: str):
    secret = (server.home / "secret_key").read_text().strip()
    assert secret
    text = _host_references(server.home)[kind]
    base = f"{server.url}/api/v1/pipelines"
    for url, body in [
        (f"{base}/validate", {"cwl": text, "filename": "evil.cwl"}),
        (base, {"name": "evil", "cwl": text, "filename": "evil.cwl"}),
    ]:
        r = server.attack(
            lambda url=url, body=body: httpx.post(url, json=body, headers=server.auth, timeout=60)
        )
        error = refused(r, "invalid_cwl")
        assert error["message"].startswith("evil.cwl:"), error
        assert kind.lstrip("$") in error["message"] and "outside" in error["message"], error
        assert secret not in r.text
    listing = httpx.get(base, headers=server.auth, timeout=30)
    assert "evil" not in [p["name"] for p in listing.json()] and secret not in listing.text
    # Nowhere in the platform's state (database, its journal, documents, logs) but its own file.
    stored = [p for p in server.home.rglob("*") if p.is_file() and p.name != "secret_key"]
    assert stored and not [p for p in stored if secret.encode() in p.read_bytes()]
