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
        self.post("/api/v1/login", {"username": username, "password": password})
        token = self.post("/api/v1/tokens", {"name": token_name, "scopes": ["all"]})["token"]
        self.http.cookies.clear()
        self.http.headers["Authorization"] = f"Bearer {token}"
        return token

    def me(self) -> dict:
        return self.get("/api/v1/me")

    def datalabs(self, q: str = "", **filters: list[str] | str) -> dict:
        return self.get("/api/v1/datalabs", q=q, **filters)

    def datalab(self, name: str) -> dict:
        return self.get(f"/api/v1/datalabs/{name}")
