"""HTTP client for the Datalabs API v1, used by the CLI and from inside labs.

Configuration, first match wins: explicit arguments; `DATALABS_API_URL` + `DATALABS_TOKEN` (set in every
lab); the credentials `datalabs login` stored in the user's config directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from platformdirs import user_config_dir


class ApiError(Exception):
    """An error answer from the platform, with its HTTP status and error code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{message} ({status} {code})")
        self.status, self.code, self.message = status, code, message


class NotConfigured(Exception):
    pass


def credentials_path() -> Path:
    return Path(
        os.environ.get("DATALABS_CREDENTIALS") or Path(user_config_dir("datalabs")) / "credentials.json"
    )


def save_credentials(url: str, token: str) -> Path:
    """Store URL and token for later commands (file mode 0600, written atomically)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f)
    os.replace(tmp, path)
    return path


def _stored() -> dict[str, str]:
    try:
        return json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0):
        stored = _stored()
        url = url or os.environ.get("DATALABS_API_URL") or stored.get("url")
        token = token or os.environ.get("DATALABS_TOKEN") or stored.get("token")
        if not url:
            raise NotConfigured("no platform configured: run `datalabs login URL` or set DATALABS_API_URL")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ApiError(response.status_code, err.get("code", "error"), err.get("message", ""))
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "error", response.text[:200]) from None
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("text/"):
            return response.text
        return response.json()

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v not in (None, "", [])})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    # ---- conveniences -----------------------------------------------------------------------------

    def login(self, username: str, password: str, token_name: str = "datalabs-cli") -> str:
        """Log in with a password and return a new API token with full scope for this client."""
        csrf = self.post("/api/v1/login", {"username": username, "password": password})["csrf_token"]
        # The session cookie alone is not enough to make changes: the CSRF header proves it is us.
        body = {"name": token_name, "scopes": ["all"]}
        token = self.request("POST", "/api/v1/tokens", json=body, headers={"X-CSRF-Token": csrf})["token"]
        self.http.cookies.clear()
        self.http.headers["Authorization"] = f"Bearer {token}"
        return token

    def me(self) -> dict:
        return self.get("/api/v1/me")

    def datalabs(self, q: str = "", **filters: list[str] | str) -> dict:
        return self.get("/api/v1/datalabs", q=q, **filters)

    def datalab(self, name: str) -> dict:
        return self.get(f"/api/v1/datalabs/{name}")

    # ---- pipelines --------------------------------------------------------------------------------

    @property
    def pipelines(self) -> Pipelines:
        return Pipelines(self)

    def upload(self, ref: str, data: bytes) -> Any:
        """Write a file into a workspace, e.g. upload("me/inputs/obs.rnx", b"...")."""
        space, _, path = ref.partition("/")
        return self.request("PUT", f"/api/v1/workspaces/{space}/files/{path}", content=data)

    def download(self, ref: str) -> bytes:
        space, _, path = ref.partition("/")
        if space.startswith("volume:"):
            url = f"/api/v1/volumes/{space[7:]}/files/{path}"
        else:
            url = f"/api/v1/workspaces/{space}/files/{path}"
        try:
            response = self.http.get(url)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, "error", response.text[:200])
        return response.content


class Pipelines:
    """`client.pipelines`: the pipeline registry as seen by the caller."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def list(self, q: str = "", keyword: str = "", kind: str = "") -> list[Pipeline]:
        found = self.client.get("/api/v1/pipelines", q=q, keyword=keyword, kind=kind)
        return [Pipeline(self.client, p) for p in found]

    def get_system_pipelines(self) -> list[Pipeline]:
        return self.list(kind="system")

    def get(self, name: str) -> Pipeline:
        return Pipeline(self.client, self.client.get(f"/api/v1/pipelines/{name}"))

    load_system_pipeline = get
    load = get

    def register(self, name: str, cwl: str, *, version: str = "1.0", **details: Any) -> Pipeline:
        body = {"name": name, "cwl": cwl, "version": version, **details}
        return Pipeline(self.client, self.client.post("/api/v1/pipelines", body))

    def runs(self, pipeline: str = "", state: str = "") -> list[Run]:
        return [Run(self.client, r) for r in self.client.get("/api/v1/runs", pipeline=pipeline, state=state)]

    def run(self, run_id: str) -> Run:
        return Run(self.client, self.client.get(f"/api/v1/runs/{run_id}"))


class Pipeline:
    def __init__(self, client: Client, info: dict) -> None:
        self.client, self.info = client, info
        self.name = info["name"]

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} {self.info.get('latest', '')}: {self.info.get('title', '')}>"

    @property
    def inputs(self) -> list[dict]:
        return self.info["inputs"]

    def submit(self, inputs: dict | None = None, **options: Any) -> Run:
        """Queue a run and return at once (options: version, output_dir, notify, timeout, engine)."""
        body = {"inputs": inputs or {}, **{k: v for k, v in options.items() if v is not None}}
        return Run(self.client, self.client.post(f"/api/v1/pipelines/{self.name}/runs", body))

    def run(self, inputs: dict | None = None, wait: bool = True, timeout: float = 3600, **options: Any):
        """With `wait` (default) the run's outputs once it succeeded (RunFailed otherwise); else the Run."""
        run = self.submit(inputs, **options)
        return run.wait(timeout).outputs() if wait else run


class RunFailed(Exception):
    def __init__(self, run: Run) -> None:
        super().__init__(f"run {run.id} {run.state}: {run.info.get('reason', '')}")
        self.run = run


class Run:
    FINAL = ("succeeded", "failed", "cancelled")

    def __init__(self, client: Client, info: dict) -> None:
        self.client, self.info = client, info
        self.id = info["id"]

    def __repr__(self) -> str:
        return f"<Run {self.id} of {self.info['pipeline']}: {self.state}>"

    @property
    def state(self) -> str:
        return self.info["state"]

    def refresh(self) -> Run:
        self.info = self.client.get(f"/api/v1/runs/{self.id}")
        return self

    def wait(self, timeout: float = 3600, interval: float = 0.2) -> Run:
        """Wait until the run ends; RunFailed unless it succeeded."""
        import time

        deadline = time.monotonic() + timeout
        while self.refresh().state not in self.FINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {self.id} still {self.state} after {timeout:.0f} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 2.0)
        if self.state != "succeeded":
            raise RunFailed(self)
        return self

    def logs(self) -> str:
        return self.client.get(f"/api/v1/runs/{self.id}/logs")

    def outputs(self) -> dict:
        return self.client.get(f"/api/v1/runs/{self.id}/outputs")["outputs"]

    def cancel(self) -> Run:
        self.info = self.client.post(f"/api/v1/runs/{self.id}/cancel")
        return self


def __getattr__(name: str) -> Any:
    # `from datalabs.client import pipelines` inside a lab: configured from DATALABS_API_URL + DATALABS_TOKEN.
    if name == "pipelines":
        return Client().pipelines
    raise AttributeError(name)
