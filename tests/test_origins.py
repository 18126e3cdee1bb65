"""Lab origins from the operator's template, and the platform-origin check of API changes."""

import pytest

from datalabs.origins import LabOrigins, same_origin


def test_the_default_template_on_the_servers_port():
    o = LabOrigins("http://{lab}.lab.localhost:{port}", 8123)
    assert o.origin("ab12") == "http://ab12.lab.localhost:8123"
    assert o.url("ab12") == "http://ab12.lab.localhost:8123/datalabs/ab12/"
    assert o.lab_of(b"ab12.lab.localhost:8123") == "ab12"
    assert o.lab_of("AB12.Lab.Localhost:8123") == "ab12"
    for host in (
        "ab12.lab.localhost",
        "ab12.lab.localhost:8000",
        "localhost:8123",
        "x.y.lab.localhost:8123",
        "",
    ):
        assert o.lab_of(host) is None, host
    assert o.csp_source() == "http://*.lab.localhost:8123" and not o.secure


def test_a_production_template_with_the_default_https_port():
    o = LabOrigins("https://{lab}.labs.example.org", 8000)
    assert o.origin("ab12") == "https://ab12.labs.example.org" and o.secure
    assert o.lab_of("ab12.labs.example.org") == o.lab_of("ab12.labs.example.org:443") == "ab12"
    assert o.lab_of("ab12.labs.example.org:8000") is None
    assert o.lab_of("ab12.labs.example.org.evil.com") is None
    assert o.csp_source() == "https://*.labs.example.org"
    assert LabOrigins("https://lab-{lab}.example.org", 1).csp_source() == "https:"


@pytest.mark.parametrize(
    "template",
    ["labs.example.org", "ftp://{lab}.x", "https://labs.example.org", "https://{lab}.x/path", ""],
)
def test_templates_that_cannot_work_are_refused_at_start(template):
    with pytest.raises(ValueError, match="origin_url"):
        LabOrigins(template, 8000)


def test_same_origin():
    assert same_origin("http://localhost:8000", "http", "localhost:8000")
    assert same_origin("https://dl.example.org", "http", "dl.example.org", "https://dl.example.org/")
    assert not same_origin("http://ab12.lab.localhost:8000", "http", "localhost:8000")
    assert not same_origin("null", "http", "localhost:8000")
    assert not same_origin("http://localhost:8000/x", "http", "localhost:8000")
    assert not same_origin("https://localhost:8000", "http", "localhost:8000")
