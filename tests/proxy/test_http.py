"""The proxy over real HTTP: a real lab on a unix socket behind a real LabProxy served by uvicorn."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from datalabs.proxy import LabProxy, Route
from tests.proxy.conftest import ALICE, BOB, SECRET, fake_authenticate
from tests.proxy.lab_app import MIB
from tests.proxy.servers import ServerThread, reset_peak_rss, rss_kib

CREDENTIAL = SECRET.split()[1]


def header_value(info: dict, name: str) -> list[str]:
    return [v for k, v in info["headers"] if k == name]


# -- who gets through ---------------------------------------------------------------------------------


def test_owner_gets_through_with_a_token_or_a_session_cookie(env):
    with env.client(ALICE) as c:
        r = c.get("/datalabs/lab1/echo?x=1&y=%2F")
    assert r.status_code == 200
    assert r.json()["path"] == "/datalabs/lab1/echo"
    assert r.json()["query"] == "x=1&y=%2F"
    with env.client(cookies={"datalabs_session": "alice-session"}) as c:
        assert c.get("/datalabs/lab1/echo").status_code == 200


def test_other_users_get_404_as_for_an_unknown_lab(env):
    seen = len(env.lab.recorder.requests)
    with env.client(BOB) as c:
        other = c.get("/datalabs/lab1/echo")
        unknown = c.get("/datalabs/nosuchlab/echo")
    with env.client({"Authorization": "Bearer root-token"}) as c:
        admin = c.get("/datalabs/lab1/echo")  # admins manage labs through the API; they do not open them
    assert other.status_code == admin.status_code == 404  # issue 19: the lab's existence is not revealed
    assert other.json()["error"]["code"] == admin.json()["error"]["code"] == "lab_not_found"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "lab_not_found"
    assert len(env.lab.recorder.requests) == seen  # nothing reached the lab


def test_anonymous_gets_401_json_and_a_browser_is_sent_to_the_login_page(env):
    with env.client() as c:
        api = c.get("/datalabs/lab1/echo")
        page = c.get("/datalabs/lab1/tree?path=a b", headers={"Accept": "text/html,*/*"})
        unknown = c.get("/datalabs/nosuchlab/echo")
    assert api.status_code == 401
    assert api.json() == {
        "error": {"code": "not_authenticated", "message": "log in or send 'Authorization: Bearer <token>'"}
    }
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/datalabs/lab1/tree%3Fpath%3Da%2520b"
    assert unknown.status_code == 401  # anonymous callers learn nothing about which labs exist


def test_a_bad_token_is_401_even_with_a_valid_cookie(env):
    headers = {"Authorization": "Bearer forged", "Cookie": "datalabs_session=alice-session"}
    with env.client(headers) as c:
        assert c.get("/datalabs/lab1/echo").status_code == 401


def test_lab_base_url_without_slash_redirects(env):
    with env.client(ALICE) as c:
        r = c.get("/datalabs/lab1?a=1")
    assert r.status_code == 307
    assert r.headers["location"] == "/datalabs/lab1/?a=1"


def test_lab_down_is_502_with_a_clear_message(env):
    with env.client(ALICE) as c:
        refused, missing = c.get("/datalabs/dead/echo"), c.get("/datalabs/gone/echo")
    for r in (refused, missing):
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "lab_unreachable"
        assert "not answering" in r.json()["error"]["message"]


def test_activity_is_recorded_for_admitted_requests_only(env):
    env.activity.forget("lab1")
    with env.client(BOB) as c:
        c.get("/datalabs/lab1/echo")
    assert env.activity.last_seen("lab1") is None
    before = time.monotonic()
    with env.client(ALICE) as c:
        c.get("/datalabs/lab1/echo")
    assert env.activity.last_seen("lab1") >= before


# -- what reaches the lab -----------------------------------------------------------------------------


def test_platform_credentials_are_stripped_and_the_lab_secret_injected(env):
    cookie = "datalabs_session=alice-session; _xsrf=abc; datalabs_anon=anon1; theme=dark"
    headers = {"Cookie": cookie, "X-Forwarded-For": "6.6.6.6", "X-Lab-Extra": "kept"}
    with env.client(headers) as c:
        r = c.get("/datalabs/lab1/echo")  # authenticated by the session cookie
    info = env.lab.recorder.requests[-1]
    assert r.status_code == 200
    assert header_value(info, "cookie") == ["_xsrf=abc; theme=dark"]
    assert header_value(info, "authorization") == [SECRET]
    assert header_value(info, "x-forwarded-for") == ["127.0.0.1"]  # the browser's claim is not trusted
    assert header_value(info, "x-forwarded-proto") == ["http"]
    assert header_value(info, "x-lab-extra") == ["kept"]
    assert header_value(info, "host") == [env.url.removeprefix("http://")]  # Host kept as the browser sent
    assert header_value(info, "x-forwarded-host") == [env.url.removeprefix("http://")]


def test_the_lab_learns_who_asks_and_a_forged_identity_is_dropped(env):
    forged = {**ALICE, "X-Datalabs-User": "bob", "X-Datalabs-Share": "collaborate"}
    with env.client(forged) as c:
        r = c.get("/datalabs/lab1/echo")
    info = env.lab.recorder.requests[-1]
    assert r.status_code == 200
    assert header_value(info, "x-datalabs-user") == ["alice"]
    assert header_value(info, "x-datalabs-share") == ["owner"]


def test_browser_authorization_never_reaches_the_lab(env):
    with env.client(ALICE) as c:
        c.get("/datalabs/lab1/echo")
    info = env.lab.recorder.requests[-1]
    assert header_value(info, "authorization") == [SECRET]
    assert "alice-token" not in str(info)


def test_method_raw_path_and_small_body_are_forwarded(env):
    with env.client(ALICE) as c:
        r = c.put("/datalabs/lab1/echo?q=%20x", content=b"hello")
    assert r.json()["method"] == "PUT"
    assert r.json()["body_len"] == 5
    assert r.json()["raw_path"] == "/datalabs/lab1/echo"
    assert r.json()["query"] == "q=%20x"


def test_head_request_then_the_connection_goes_on_working(env):
    with env.client(ALICE) as c:
        head = c.head("/datalabs/lab1/big?size=1000&length=1")
        after = c.get("/datalabs/lab1/echo")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "1000"
    assert after.status_code == 200


def test_host_port_labs_work_too(env):
    with env.client(ALICE) as c:
        r = c.get("/datalabs/tcplab/echo")
        moved = c.get(
            "/datalabs/tcplab/redirect", params={"to": f"http://{env.lab.tcp}/datalabs/tcplab/x?a=1"}
        )
    assert r.status_code == 200
    assert header_value(r.json(), "authorization") == ["*" * len(SECRET)]  # masked in the echoed body
    assert moved.headers["location"] == "/datalabs/tcplab/x?a=1"


# -- what comes back ----------------------------------------------------------------------------------


def test_the_secret_never_reaches_the_browser(env):
    seen = []
    with env.client(ALICE) as c:
        for path in ("/datalabs/lab1/echo", "/datalabs/lab1/leak", "/datalabs/lab1/cookies"):
            r = c.get(path)
            seen.append(str(r.headers.raw) + r.text)
        leak = c.get("/datalabs/lab1/leak")
    assert header_value(env.lab.recorder.requests[-1], "authorization") == [SECRET]  # it did reach the lab
    for text in seen:
        assert CREDENTIAL not in text
    assert "x-echo-auth" not in leak.headers and leak.headers["x-harmless"] == "ok"
    assert leak.text == f"before {'*' * len(SECRET)} after"  # masked across the chunk boundary


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("http://localhost/datalabs/lab1/tree?a=1#top", "/datalabs/lab1/tree?a=1#top"),
        ("http://127.0.0.1:8888/datalabs/lab1/lab", "/datalabs/lab1/lab"),
        ("{proxy}/datalabs/lab1/login", "/datalabs/lab1/login"),
        ("https://example.org/elsewhere", "https://example.org/elsewhere"),
        ("/datalabs/lab1/relative", "/datalabs/lab1/relative"),
    ],
)
def test_absolute_redirects_to_the_lab_become_paths(env, to, expected):
    with env.client(ALICE) as c:
        r = c.get("/datalabs/lab1/redirect", params={"to": to.format(proxy=env.url)})
    assert r.status_code == 302
    assert r.headers["location"] == expected


def test_lab_cookies_are_scoped_to_the_lab_path(env):
    with env.client(ALICE) as c:
        cookies = c.get("/datalabs/lab1/cookies").headers.get_list("set-cookie")
    by_name = {cookie.split("=")[0]: cookie for cookie in cookies}
    assert "Path=/datalabs/lab1/" in by_name["wide"] and "Path=/;" not in by_name["wide"] + ";"
    assert "Path=/datalabs/lab1/" in by_name["nopath"]
    assert "Path=/datalabs/lab1/sub" in by_name["narrow"] and "HttpOnly" in by_name["narrow"]
    assert "Domain" not in by_name["domained"] and "Path=/datalabs/lab1/" in by_name["domained"]
    assert "datalabs_session" not in by_name  # a lab cannot plant a platform cookie


# -- streaming and keep-alive -------------------------------------------------------------------------


def test_large_download_streams_without_buffering(env):
    size = 256 * MIB
    with env.client(ALICE) as c:
        c.get("/datalabs/lab1/big?size=1000")  # warm up: connections, imports
        baseline = rss_kib()
        reset_peak_rss()
        received = 0
        with c.stream("GET", f"/datalabs/lab1/big?size={size}&length=1") as r:
            assert r.headers["content-length"] == str(size)
            for piece in r.iter_raw():
                received += len(piece)
        peak = rss_kib("VmHWM")
    assert received == size
    # Proxy, lab and client all live in this process: the whole chain must stay far below the body size.
    assert (peak - baseline) < 64 * 1024, f"RSS grew {(peak - baseline) // 1024} MiB"


def test_chunked_download_without_length(env):
    with env.client(ALICE) as c:
        r = c.get(f"/datalabs/lab1/big?size={5 * MIB + 7}")
    assert len(r.content) == 5 * MIB + 7
    assert "content-length" not in r.headers or r.headers["content-length"] == str(5 * MIB + 7)


@pytest.mark.parametrize("chunked", [True, False])
def test_upload_streams_to_the_lab(env, chunked):
    piece = bytes(range(256)) * 4096  # 1 MiB
    count = 64
    expected = hashlib.sha256(piece * count).hexdigest()

    def generate():
        for _ in range(count):
            yield piece

    baseline = rss_kib()
    reset_peak_rss()
    with env.client(ALICE) as c:
        if chunked:
            r = c.post("/datalabs/lab1/upload", content=generate())
        else:
            headers = {"Content-Length": str(len(piece) * count)}
            r = c.post("/datalabs/lab1/upload", content=generate(), headers=headers)
    assert r.json() == {"bytes": len(piece) * count, "sha256": expected}
    assert (rss_kib("VmHWM") - baseline) < 64 * 1024


def test_sequential_requests_reuse_connections_to_the_lab(env):
    with env.client(ALICE) as c:
        c.get("/datalabs/lab1/echo")
        before = env.lab.recorder.connections
        for _ in range(50):
            assert c.get("/datalabs/lab1/echo").status_code == 200
    assert env.lab.recorder.connections - before <= 2


def test_browser_leaving_mid_download_stops_the_lab_stream(env):
    ended_before = len(env.lab.recorder.streams_ended)
    with env.client(ALICE) as c, c.stream("GET", "/datalabs/lab1/endless") as r:
        for _ in r.iter_raw():
            break
    deadline = time.monotonic() + 10
    while len(env.lab.recorder.streams_ended) == ended_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(env.lab.recorder.streams_ended) > ended_before
    with env.client(ALICE) as c:
        assert c.get("/datalabs/lab1/echo").status_code == 200  # the pool is healthy afterwards


def test_a_route_moved_to_another_socket_is_followed(env, tmp_path):
    env.add_route(Route("moving", "alice", socket=str(tmp_path / "nothing.sock")))
    with env.client(ALICE) as c:
        assert c.get("/datalabs/moving/echo").status_code == 502
        env.add_route(Route("moving", "alice", socket=env.lab.socket))
        assert c.get("/datalabs/moving/echo").status_code == 200


def test_concurrent_requests_all_complete(env):
    import concurrent.futures

    def fetch(i: int) -> int:
        with env.client(ALICE) as c:
            return c.get(f"/datalabs/lab1/echo?i={i}").status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert set(pool.map(fetch, range(64))) == {200}


def test_not_a_lab_path(env):
    with env.client(ALICE) as c:
        assert c.get("/elsewhere").status_code == 404
        assert c.get("/datalabs/").status_code == 404
        assert c.get("/datalabs/..%2F/x").status_code == 404


def test_transport_errors_are_not_500(env):
    with env.client(ALICE) as c:
        r = c.get("/datalabs/lab1/nosuchpage")
    assert r.status_code == 404  # the lab's own 404, passed through
    with pytest.raises(httpx.HTTPStatusError):
        r.raise_for_status()


def test_in_front_of_the_platform_app(env):
    async def platform(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"8")]})
        await send({"type": "http.response.body", "body": b"platform"})

    proxy = LabProxy(env.routes, fake_authenticate)  # one proxy per event loop: its pools belong to it
    server = ServerThread(proxy.in_front_of(platform)).start()
    try:
        with httpx.Client(base_url=server.url, headers=ALICE, trust_env=False) as c:
            assert c.get("/api/v1/datalabs").text == "platform"
            assert c.get("/datalabs").text == "platform"  # not a lab path
            assert c.get("/datalabs/lab1/echo").json()["path"] == "/datalabs/lab1/echo"
    finally:
        server.stop()


def test_mounted_in_a_starlette_app(env):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    proxy = LabProxy(env.routes, fake_authenticate)
    server = ServerThread(Starlette(routes=[Mount("/datalabs", app=proxy)])).start()
    try:
        with httpx.Client(base_url=server.url, headers=ALICE, trust_env=False) as c:
            r = c.get("/datalabs/lab1/echo?a=1")
        assert r.status_code == 200
        assert (r.json()["path"], r.json()["query"]) == ("/datalabs/lab1/echo", "a=1")
    finally:
        server.stop()
