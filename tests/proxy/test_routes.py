"""The RouteTable contract, run against every implementation, and Route validation."""

from __future__ import annotations

import asyncio

import pytest

from datalabs.proxy import MemoryRouteTable, Route, RouteTable


class PrimitiveRouteTable(MemoryRouteTable):
    """The memory table without its own reconcile: exercises RouteTable's generic one."""

    reconcile = RouteTable.reconcile


@pytest.fixture(params=[MemoryRouteTable, PrimitiveRouteTable])
def table(request) -> RouteTable:
    return request.param()


def route(lab_id: str, owner: str = "ada", socket: str = "/run/a.sock", **kwargs) -> Route:
    return Route(lab_id, owner, socket=socket, **kwargs)


def run(coro):
    return asyncio.run(coro)


def test_add_get_replace_delete(table):
    run(table.add_route(route("a")))
    assert run(table.get_route("a")) == route("a")
    run(table.add_route(route("a", socket="/run/b.sock")))
    assert run(table.get_route("a")).socket == "/run/b.sock"
    run(table.delete_route("a"))
    assert run(table.get_route("a")) is None
    run(table.delete_route("a"))  # deleting what is gone is not an error


def test_get_all_routes_is_a_snapshot(table):
    run(table.add_route(route("a")))
    snapshot = run(table.get_all_routes())
    run(table.add_route(route("b")))
    assert set(snapshot) == {"a"}
    assert set(run(table.get_all_routes())) == {"a", "b"}


def test_reconcile_adds_updates_removes_and_reports(table):
    for lab_id in ("keep", "change", "drop"):
        run(table.add_route(route(lab_id)))
    wanted = {
        "keep": route("keep"),
        "change": route("change", headers={"Authorization": "token new-secret-value"}),
        "new": route("new", host_port="127.0.0.1:9000", socket=None),
    }
    changes = run(table.reconcile(wanted))
    assert (changes.added, changes.updated, changes.removed) == (["new"], ["change"], ["drop"])
    assert run(table.get_all_routes()) == wanted
    assert not run(table.reconcile(wanted))  # converged: nothing to do


def test_reconcile_rejects_a_route_filed_under_another_id(table):
    with pytest.raises(ValueError):
        run(table.reconcile({"a": route("b")}))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lab_id": "../x", "socket": "/s"},
        {"lab_id": "a", "socket": None},
        {"lab_id": "a", "socket": "/s", "host_port": "h:1"},
        {"lab_id": "a", "host_port": "nohost"},
        {"lab_id": "a", "socket": "/s", "headers": {"X-Bad": "v\r\nInjected: 1"}},
        {"lab_id": "a", "socket": "/s", "headers": {"Bad Name": "v"}},
    ],
)
def test_invalid_routes_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Route(owner="ada", **kwargs)


def test_route_targets_and_secrets():
    tcp = Route("a", "ada", host_port="[::1]:8888", headers={"Authorization": "token abcdefgh12345"})
    assert tcp.tcp_address == ("::1", 8888)
    assert tcp.target == ("tcp", "[::1]:8888")
    assert tcp.secrets == (b"token abcdefgh12345", b"abcdefgh12345")
    assert Route("b", "ada", socket="/s", headers={"X-Short": "abc"}).secrets == ()
