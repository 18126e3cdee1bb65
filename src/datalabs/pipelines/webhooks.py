"""Where webhooks may go: public addresses only, unless the operator allows a network.

A webhook URL is chosen by any user, and the platform POSTs to it from inside the operator's network:
without a rule, `http://127.0.0.1:8000/...`, `http://10.0.0.5/...` or the cloud metadata address
(169.254.169.254) would let users reach internal services (server-side request forgery). So a
destination's host is resolved and every address it resolves to must be global (not loopback, private,
link-local, shared, reserved or multicast), or inside `pipelines.webhook_allow_networks`.

The check runs when the run or schedule is submitted (a clear 422) and again just before each call; the
call then connects to the address that was checked (the URL keeps its host for the Host header and TLS
SNI/certificate checks), so a DNS answer that changes between check and call (DNS rebinding) cannot
redirect it. Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from datalabs.errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _addresses(host: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise Invalid(f"notify.webhooks: host '{host}' does not resolve ({exc})", code="bad_notify") from exc
    # An IPv4-mapped IPv6 answer is judged as the IPv4 address it stands for.
    found = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    return [a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a for a in found]


def check_destination(url: str, allowed_networks: list[str]) -> Address:
    """The address to call for `url`; Invalid when the URL is malformed or any address is internal."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"notify.webhooks: '{url}' is not an http(s) URL", code="bad_notify")
    networks = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]
    addresses = _addresses(parts.hostname)
    for address in addresses:
        if not address.is_global and not any(address in net for net in networks):
            raise Invalid(
                f"notify.webhooks: '{url}' points to the internal address {address}; webhooks may only "
                "go to public addresses (an operator can allow a network with "
                "DATALABS_PIPELINES__WEBHOOK_ALLOW_NETWORKS)",
                code="bad_notify",
            )
    return addresses[0]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, allowed_networks: list[str]) -> None:
    """POST to `url` at the address just checked; raises on a refused destination or a non-2xx answer."""
    parts = urlsplit(url)
    address = check_destination(url, allowed_networks)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    pinned = parts._replace(netloc=netloc).geturl()
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        request = client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "Host": parts.netloc.rsplit("@", 1)[-1]},
            extensions={"sni_hostname": parts.hostname} if parts.scheme == "https" else {},
        )
        client.send(request).raise_for_status()
