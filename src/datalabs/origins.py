"""Origins: where each lab is served (its own origin, as JupyterHub's `subdomain_host`) and which
origin a request came from.

A lab's pages run whatever its user (or the author of a published app) put there. On the platform's
origin such a script could use the platform session like the platform's own pages do; on an origin of
its own, the browser keeps the two apart. `LabOrigins` turns the operator's template
(`labs.origin_url`, e.g. `https://{lab}.labs.example.org`, default `http://{lab}.lab.localhost:{port}`:
Chromium and Firefox resolve every `*.localhost` name to loopback) into a lab's origin and back from a
request's Host header. Pure functions: used by the proxy, the API and the pages alike.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LAB_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"  # as proxy.routes.LAB_ID_RE, without '.' (a DNS label)


class LabOrigins:
    """`template`: `scheme://<host with {lab}>[:port]`, `{port}` standing for `port` (the server's)."""

    def __init__(self, template: str, port: int) -> None:
        url = urlsplit(template.replace("{port}", str(port)))
        if url.scheme not in _DEFAULT_PORTS or "{lab}" not in url.netloc or url.path not in ("", "/"):
            raise ValueError(
                f"labs.origin_url must look like 'https://{{lab}}.labs.example.org', not {template!r}"
            )
        host, _, explicit = url.netloc.rpartition(":") if "]" not in url.netloc else (url.netloc, "", "")
        if not explicit.isdigit():
            host, explicit = url.netloc, ""
        self.scheme = url.scheme
        self.port = int(explicit) if explicit else _DEFAULT_PORTS[url.scheme]
        self.host_template = host.lower()
        self.secure = url.scheme == "https"
        before, _, after = self.host_template.partition("{lab}")
        self._host_re = re.compile(rf"{re.escape(before)}({_LAB_ID}){re.escape(after)}", re.IGNORECASE)

    def origin(self, lab_id: str) -> str:
        """`scheme://host[:port]` as a browser writes it in `Origin` (default ports left out)."""
        host = self.host_template.replace("{lab}", lab_id.lower())
        port = "" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}"

    def url(self, lab_id: str, path: str = "") -> str:
        """The lab's address for a browser: its origin + `path` (default: its base URL)."""
        return self.origin(lab_id) + (path or f"/datalabs/{lab_id}/")

    def csp_source(self) -> str:
        """Every lab's origin as one CSP source: `scheme://*.rest[:port]` when the lab id is the first
        label of the host (as it should be), else the scheme alone."""
        if not self.host_template.startswith("{lab}."):
            return f"{self.scheme}:"
        port = "" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://*.{self.host_template.removeprefix('{lab}.')}{port}"

    def lab_of(self, host: str | bytes | None) -> str | None:
        """The lab whose origin a request's Host header names (lower-case, as host names compare
        case-insensitively and lab ids are lower-case hex), or None: the platform, or anything else."""
        if not host:
            return None
        if isinstance(host, bytes):
            host = host.decode("latin-1")
        name, port = _split_host(host)
        if port is None:
            port = self.port if self.port == _DEFAULT_PORTS[self.scheme] else -1
        if port != self.port:
            return None
        match = self._host_re.fullmatch(name)
        return match.group(1) if match else None


def origin_of_url(url: str) -> str:
    """`scheme://host[:port]` of an absolute URL, as `Origin` would say it ("" if it is not one)."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return ""
    port = parts.port
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    shown = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host.lower()}{shown}"


def same_origin(origin: str, scheme: str, host: str, public_url: str = "") -> bool:
    """Whether a request's `Origin` is the platform's own: the address the request was sent to
    (`scheme` and Host), or the configured public URL (behind a TLS-terminating proxy the request
    itself may say http). A page of a lab, another site, a sandboxed frame (`null`) are all not."""
    if not origin or origin == "null":
        return False
    own = {origin_of_url(f"{'https' if scheme in ('https', 'wss') else 'http'}://{host}")}
    if public_url:
        own.add(origin_of_url(public_url))
    own.discard("")
    return origin_of_url(origin) in own and origin_of_url(origin) == origin.rstrip("/").lower()


def _split_host(host: str) -> tuple[str, int | None]:
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return name, -1
    return name.rstrip("."), int(port) if port else None
