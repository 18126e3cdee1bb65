"""Webhook destinations: public addresses only (no SSRF into the operator's network), checked again at
call time against the address actually connected to."""

from __future__ import annotations

import pytest

from datalabs.errors import Invalid
from datalabs.pipelines import webhooks
from tests.pipelines.conftest import Receiver


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",  # a name that resolves to loopback
        "http://10.1.2.3/hook",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://100.64.0.1/",  # shared address space
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://[fd00::1]/",
        "http://0.0.0.0/",
    ],
)
def test_internal_destinations_are_refused(url):
    with pytest.raises(Invalid, match="internal address"):
        webhooks.check_destination(url, [])


def test_public_addresses_and_allowed_networks_pass():
    assert str(webhooks.check_destination("https://93.184.216.34/hook", [])) == "93.184.216.34"
    assert str(webhooks.check_destination("http://10.1.2.3:9000/h", ["10.0.0.0/8"])) == "10.1.2.3"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.org/x", "not an http"),
        ("http:///x", "not an http"),
        ("http://no-such.invalid/", "resolve"),
    ],
)
def test_malformed_or_unresolvable_urls_say_why(url, why):
    with pytest.raises(Invalid, match=why):
        webhooks.check_destination(url, [])


def test_post_goes_to_the_checked_address_with_the_original_host():
    receiver = Receiver()
    try:
        url = receiver.url.replace("127.0.0.1", "localhost")
        webhooks.post(url, b"{}", {"Content-Type": "application/json"}, 5, ["127.0.0.0/8", "::1/128"])
        assert len(receiver.calls) == 1
        assert receiver.calls[0]["headers"]["Host"] == f"localhost:{receiver.server.server_port}"
        # The same receiver without the operator's allowance: refused before anything is sent.
        with pytest.raises(Invalid, match="internal address"):
            webhooks.post(receiver.url, b"{}", {}, 5, [])
        assert len(receiver.calls) == 1
    finally:
        receiver.server.shutdown()
