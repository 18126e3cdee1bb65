"""Header rewriting and body masking, on their own (the end-to-end tests run them through the proxy)."""

from __future__ import annotations

import pytest

from datalabs.proxy import Route
from datalabs.proxy.headers import request_headers, response_headers, scope_set_cookie, strip_platform_cookies
from datalabs.proxy.redact import Redactor, wants_redaction

ROUTE = Route("lab1", "ada", socket="/s", headers={"Authorization": "token secret-secret-1234"})
PREFIX = b"/datalabs/lab1/"


def scope(headers: list[tuple[bytes, bytes]], method: str = "GET", **extra) -> dict:
    return {"type": "http", "method": method, "headers": headers, "client": ("10.0.0.7", 5555), **extra}


@pytest.mark.parametrize(
    ("cookie", "kept"),
    [
        (b"datalabs_session=s; _xsrf=x", b"_xsrf=x"),
        (b"a=1;datalabs_anon=q;b=2", b"a=1; b=2"),
        (b"datalabs_session=s", b""),
        (b"a=1; b=2", b"a=1; b=2"),
        (b"datalabs_session_like=keep", b"datalabs_session_like=keep"),
    ],
)
def test_strip_platform_cookies(cookie, kept):
    assert strip_platform_cookies(cookie) == kept


def test_request_headers_drop_hop_by_hop_and_connection_nominated_ones():
    headers, framing = request_headers(
        scope(
            [
                (b"host", b"example.org"),
                (b"connection", b"keep-alive, x-private, host"),
                (b"keep-alive", b"timeout=5"),
                (b"x-private", b"1"),
                (b"te", b"trailers"),
                (b"upgrade", b"h2c"),
                (b"proxy-authorization", b"Basic x"),
                (b"authorization", b"Bearer platform"),
                (b"forwarded", b"for=1.2.3.4"),
                (b"content-length", b"3"),
            ],
            method="POST",
            scheme="https",
        ),
        ROUTE,
    )
    names = [name for name, _ in headers]
    assert framing == "length"
    assert names.count(b"authorization") == 1 and (b"authorization", b"token secret-secret-1234") in headers
    for gone in (b"connection", b"keep-alive", b"x-private", b"te", b"upgrade", b"proxy-authorization"):
        assert gone not in names
    assert (b"host", b"example.org") in headers  # nominated by Connection, but essential
    assert (b"x-forwarded-for", b"10.0.0.7") in headers
    assert (b"x-forwarded-proto", b"https") in headers
    assert b"forwarded" not in names


def test_request_headers_chunked_body_is_rechunked():
    headers, framing = request_headers(scope([(b"transfer-encoding", b"chunked")], method="POST"), ROUTE)
    assert framing == "chunked"
    assert (b"transfer-encoding", b"chunked") in headers


def test_response_headers_never_carry_the_secret():
    out = response_headers(
        [
            (b"x-debug", b"auth was token secret-secret-1234"),
            (b"x-partial", b"secret-secret-1234"),
            (b"content-type", b"text/html"),
            (b"connection", b"close, x-hop"),
            (b"x-hop", b"1"),
            (b"transfer-encoding", b"chunked"),
            (b"server", b"TornadoServer/6.4"),
        ],
        ROUTE,
        b"example.org",
        PREFIX,
    )
    assert out == [(b"content-type", b"text/html")]


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        (b"a=1", b"a=1; Path=/datalabs/lab1/"),
        (b"a=1; Path=/; HttpOnly", b"a=1; HttpOnly; Path=/datalabs/lab1/"),
        (b"a=1; path=/datalabs/lab1/api", b"a=1; Path=/datalabs/lab1/api"),
        (b"a=1; Path=/datalabs/lab10/", b"a=1; Path=/datalabs/lab1/"),
        (b"a=1; Domain=.example.org; Secure", b"a=1; Secure; Path=/datalabs/lab1/"),
        (b"datalabs_session=x; Path=/", None),
    ],
)
def test_set_cookie_scoping(cookie, expected):
    assert scope_set_cookie(cookie, PREFIX) == expected


def test_redactor_masks_across_chunk_boundaries_without_holding_plain_text():
    redactor = Redactor(ROUTE.secrets)
    out = [
        redactor.feed(b'{"token": "secret-se'),
        redactor.feed(b'cret-1234"}\n'),
        redactor.feed(b"", final=True),
    ]
    assert b"".join(out) == b'{"token": "' + b"*" * 18 + b'"}\n'
    assert out[1].endswith(b"\n")  # nothing held back once no partial secret is pending
    plain = Redactor(ROUTE.secrets)
    assert plain.feed(b"data: 1\n\n") == b"data: 1\n\n"  # streams (SSE) are not delayed


def test_redactor_is_length_preserving():
    body = b"x" * 100 + b"token secret-secret-1234" + b"y" * 100
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    redactor = Redactor(ROUTE.secrets)
    out = b"".join(redactor.feed(p) for p in pieces) + redactor.feed(b"", final=True)
    assert len(out) == len(body) and b"secret" not in out


@pytest.mark.parametrize(
    ("headers", "scanned"),
    [
        ([(b"content-type", b"text/html; charset=utf-8")], True),
        ([(b"content-type", b"application/x-ipynb+json")], True),
        ([(b"content-type", b"application/octet-stream")], False),
        ([(b"content-type", b"text/html"), (b"content-encoding", b"gzip")], False),
        ([], True),
    ],
)
def test_which_bodies_are_scanned(headers, scanned):
    assert wants_redaction(headers) is scanned


def test_identity_headers_come_from_the_proxy_only():
    forged = [(b"host", b"h"), (b"x-datalabs-user", b"root"), (b"x-datalabs-share", b"owner")]
    headers, _ = request_headers(scope(forged), ROUTE)
    assert not [n for n, _ in headers if n.startswith(b"x-datalabs-")]  # not admitted: nothing at all
    admitted = scope(forged, **{"datalabs.user": "zoë", "datalabs.share": "view"})
    headers, _ = request_headers(admitted, ROUTE, websocket=True)
    assert [(n, v) for n, v in headers if n.startswith(b"x-datalabs-")] == [
        (b"x-datalabs-user", "zoë".encode()),
        (b"x-datalabs-share", b"view"),
    ]
    bogus = scope([], **{"datalabs.user": "zoë", "datalabs.share": "admin"})
    assert not [n for n, _ in request_headers(bogus, ROUTE)[0] if n.startswith(b"x-datalabs-")]
