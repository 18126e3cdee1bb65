"""The launch form generated from CWL inputs: widgets, defaults, what posted strings become, and where the
services' messages are shown."""

from __future__ import annotations

import pytest

from datalabs.errors import Invalid
from datalabs.pipelines.documents import Param
from datalabs.pipelines.form import error_place, fields, notify_of, parse

ENUM = {"type": "enum", "symbols": ["#main/mode/fast", "#main/mode/exact"]}
PARAMS = [
    Param("text", "string", label="Banner text", doc="What to write", default="hi", has_default=True),
    Param("count", "int"),
    Param("ratio", ["null", "double"]),
    Param("loud", "boolean", default=True, has_default=True),
    Param("maybe", ["null", "boolean"]),
    Param("mode", ENUM, default="fast", has_default=True),
    Param("data", "File"),
    Param("where", ["null", "Directory"]),
    Param("names", {"type": "array", "items": "string"}),
    Param("files", {"type": "array", "items": "File"}),
    Param("opts", {"type": "record", "fields": []}),
]


def by_id(typed=None):
    return {f.id: f for f in fields(PARAMS, typed)}


def test_widgets_defaults_and_required():
    f = by_id()
    assert (f["text"].widget, f["text"].label, f["text"].help, f["text"].value) == (
        "text",
        "Banner text",
        "What to write",
        "hi",
    )
    assert not f["text"].required  # it has a default
    assert (f["count"].widget, f["count"].step, f["count"].required, f["count"].label) == (
        "number",
        "1",
        True,
        "count",
    )
    assert (f["ratio"].widget, f["ratio"].step, f["ratio"].required, f["ratio"].type_text) == (
        "number",
        "any",
        False,
        "double?",
    )
    assert f["loud"].widget == "checkbox" and f["loud"].checked and not f["maybe"].checked
    assert (
        f["mode"].widget == "select" and f["mode"].options == ["fast", "exact"] and f["mode"].value == "fast"
    )
    assert (f["data"].widget, f["data"].kind, f["data"].required) == ("file", "File", True)
    assert (f["where"].widget, f["where"].kind, f["where"].required) == ("file", "Directory", False)
    assert f["names"].widget == "lines" and f["names"].kind == ""
    assert f["files"].widget == "lines" and f["files"].kind == "File"
    assert f["opts"].widget == "json"
    assert all(x.name == f"in.{x.id}" for x in f.values())


def test_file_defaults_show_their_reference_and_typed_values_win():
    p = Param("data", "File", default={"class": "File", "location": "me/in.txt"}, has_default=True)
    assert fields([p])[0].value == "me/in.txt"
    f = by_id({"in.text": "typed", "in.count": "abc"})  # what the user posted is shown again, even invalid
    assert f["text"].value == "typed" and f["count"].value == "abc"
    assert not f["loud"].checked  # a posted form without the box means it was unticked


def test_parse_converts_and_leaves_empty_fields_out():
    posted = {
        "in.text": "  hello ",
        "in.count": "3",
        "in.ratio": "",
        "in.loud": "true",
        "in.mode": "exact",
        "in.data": "me/data/x.txt",
        "in.names": "a\n\n b \n",
        "in.files": "me/a.txt\nvolume:V/b.txt",
        "in.opts": '{"k": 1}',
    }
    inputs, errors = parse(PARAMS, posted)
    assert errors == {}
    assert inputs == {
        "text": "hello",
        "count": 3,
        "loud": True,
        "mode": "exact",
        "data": "me/data/x.txt",
        "names": ["a", "b"],
        "files": ["me/a.txt", "volume:V/b.txt"],
        "opts": {"k": 1},
    }  # "maybe" (optional boolean, no default) unticked stays unset; "ratio" empty stays unset


def test_parse_reports_each_bad_field():
    inputs, errors = parse(PARAMS, {"in.count": "3.5", "in.ratio": "x", "in.opts": "{", "in.names": "a"})
    assert errors["count"] == "input 'count': '3.5' is not a whole number"
    assert errors["ratio"] == "input 'ratio': 'x' is not a number"
    assert errors["opts"].startswith("input 'opts': not valid JSON")
    assert inputs == {"loud": False, "names": ["a"]}


def test_notify_options():
    assert notify_of({}) is None
    assert notify_of({"notify_failure": "1", "email_me": "1"}) == {
        "on": ["failure"],
        "email": True,
        "webhooks": [],
    }
    both = notify_of(
        {"notify_failure": "1", "notify_success": "1", "email_to": "a@x.org, b@y.org", "email_me": "1"},
        own_email="me@z.org",
    )
    assert both == {"on": ["failure", "success"], "email": ["a@x.org", "b@y.org", "me@z.org"], "webhooks": []}
    assert notify_of({"notify_success": "1", "webhook": "https://h.example/x"})["webhooks"] == [
        "https://h.example/x"
    ]
    with pytest.raises(Invalid, match="choose when"):
        notify_of({"email_me": "1"})
    with pytest.raises(Invalid, match="choose whom"):
        notify_of({"notify_failure": "1"})


@pytest.mark.parametrize(
    ("message", "place"),
    [
        ("input 'count': expected int, got 'x'", "count"),
        ("input 'data' (File) is required", "data"),
        ("input 'ghost': no such thing", "page"),
        ("notify.webhooks: a list of http(s) URLs", "notify"),
        ("output_dir: no workspace 'team:x'", "output"),
        ("'x' is not a cron rule: five fields", "cron"),
        ("unknown input 'zz'; this pipeline takes: count", "page"),
    ],
)
def test_error_place(message, place):
    assert error_place(message, {"count", "data"}) == place
