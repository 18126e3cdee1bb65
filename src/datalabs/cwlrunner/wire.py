"""A small HTTP/1.1 client over one kept-alive socket, for `datalabs cwl-runner`.

The runner is a command people and test suites start thousands of times: its start-up is most of a short
run's time. `http.client` pulls in the e-mail parser and `httpx` much more (40-100 ms before the first
byte); this speaks the little HTTP the platform API needs (JSON bodies, Content-Length or chunked answers)
with the standard library's socket alone. Configuration as `datalabs.client`: `DATALABS_API_URL` +
`DATALABS_TOKEN`, else the credentials `datalabs login` stored.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({status} {code})")
        self.status, self.code, self.message = status, code, message


class NotConfigured(Exception):
    pass


def credentials() -> tuple[str, str]:
    """(API URL, token) as `datalabs.client.Client` finds them (environment first, then `datalabs login`)."""
    url, token = os.environ.get("DATALABS_API_URL", ""), os.environ.get("DATALABS_TOKEN", "")
    if not url or not token:
        path = os.environ.get("DATALABS_CREDENTIALS") or str(
            Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
            / "datalabs"
            / "credentials.json"
        )
        try:
            stored = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            stored = {}
        url, token = url or stored.get("url", ""), token or stored.get("token", "")
    if not url:
        raise NotConfigured("no platform configured: run `datalabs login URL` or set DATALABS_API_URL")
    return url.rstrip("/"), token


class Connection:
    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        split = urlsplit(url)
        if split.scheme not in ("http", "https"):
            raise NotConfigured(f"'{url}' is not an http(s) URL")
        self.https = split.scheme == "https"
        self.host = split.hostname or "127.0.0.1"
        self.port = split.port or (443 if self.https else 80)
        self.prefix = split.path.rstrip("/")
        self.token, self.timeout = token, timeout
        self._sock: Any = None
        self._buf = b""

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.https:
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self._sock, self._buf = sock, b""

    # ---- requests -------------------------------------------------------------------------------------

    def json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        status, headers, content = self.request(method, path, data, "application/json")
        if status >= 400:
            raise _error(status, content)
        return json.loads(content) if content else None

    def put(self, path: str, data: bytes) -> None:
        status, _, content = self.request("PUT", path, data, "application/octet-stream")
        if status >= 400:
            raise _error(status, content)

    def get_bytes(self, path: str) -> bytes:
        status, _, content = self.request("GET", path)
        if status >= 400:
            raise _error(status, content)
        return content

    def request(
        self, method: str, path: str, data: bytes | None = None, ctype: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """`path` is sent as given: quote what it holds (`files_path` does for workspace references)."""
        head = [f"{method} {self.prefix}{path} HTTP/1.1", f"Host: {self.host}"]
        if self.token:
            head.append(f"Authorization: Bearer {self.token}")
        if data is not None:
            head += [f"Content-Type: {ctype}", f"Content-Length: {len(data)}"]
        message = ("\r\n".join(head) + "\r\n\r\n").encode() + (data or b"")
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more, fresh
            fresh = self._sock is None
            try:
                if fresh:
                    self._connect()
                self._sock.sendall(message)
                return self._response(method)
            except (ConnectionError, _Closed) as exc:
                self.close()
                if fresh or attempt:
                    raise ApiError(0, "unreachable", f"cannot reach {self.host}:{self.port}: {exc}") from None
            except OSError as exc:
                self.close()
                raise ApiError(0, "unreachable", f"cannot reach {self.host}:{self.port}: {exc}") from None
        raise AssertionError("unreachable")

    # ---- responses ------------------------------------------------------------------------------------

    def _response(self, method: str) -> tuple[int, dict[str, str], bytes]:
        head = self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked()
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:  # until the server closes
            body = self._buf + b"".join(iter(lambda: self._sock.recv(65536), b""))
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _fill(self) -> None:
        chunk = self._sock.recv(262144)
        if not chunk:
            raise _Closed("the connection was closed")
        self._buf += chunk

    def _until(self, marker: bytes) -> bytes:
        while (at := self._buf.find(marker)) < 0:
            self._fill()
        found, self._buf = self._buf[:at], self._buf[at + len(marker) :]
        return found

    def _exactly(self, n: int) -> bytes:
        parts, have = [self._buf[:n]], min(n, len(self._buf))
        self._buf = self._buf[n:]
        while have < n:
            chunk = self._sock.recv(min(1 << 20, n - have))
            if not chunk:
                raise _Closed("the connection was closed mid-answer")
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self._until(b"\r\n")  # no trailers are sent
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._until(b"\r\n")


def files_path(ref: str, query: str = "") -> str:
    """The API path of a workspace reference (`me/a b#1.txt` -> /api/v1/workspaces/me/files/a%20b%231.txt)."""
    space, _, rest = ref.partition("/")
    path = f"/api/v1/workspaces/{quote(space, safe=':')}/files/{quote(rest, safe='/')}"
    return f"{path}?{query}" if query else path


class _Closed(Exception):
    pass


def _error(status: int, content: bytes) -> ApiError:
    try:
        err = json.loads(content)["error"]
        return ApiError(status, err.get("code", "error"), err.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return ApiError(status, "error", content[:200].decode(errors="replace"))
