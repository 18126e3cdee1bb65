"""Pipelines and runs as pages show them: sources, keyword counts, output files of a CWL output object."""

from __future__ import annotations

from types import SimpleNamespace

from datalabs.pipelines.views import filter_source, keyword_counts, output_files, source_of


def pipeline(name, system=False, owner_id=None, keywords=()):
    return SimpleNamespace(name=name, system=system, owner_id=owner_id, keywords=list(keywords))


def test_sources_and_keywords():
    me = SimpleNamespace(user=SimpleNamespace(id=1))
    rows = [
        pipeline("sys", system=True, keywords=["text"]),
        pipeline("mine", owner_id=1, keywords=["text", "gnss"]),
        pipeline("theirs", owner_id=2, keywords=["Gnss"]),
    ]
    assert [source_of(p, me) for p in rows] == ["system", "mine", "shared"]
    assert [p.name for p in filter_source(rows, me, "shared")] == ["theirs"]
    assert [p.name for p in filter_source(rows, me, "")] == ["sys", "mine", "theirs"]
    assert keyword_counts(rows) == [("text", 2), ("gnss", 1), ("Gnss", 1)]


def test_output_files_are_found_at_any_depth():
    outputs = {
        "banner": {"class": "File", "location": "me/pipelines/x/r1/banner.txt", "size": 12},
        "pages": [{"class": "File", "location": "me/pipelines/x/r1/a.png"}, {"class": "File"}],
        "folder": {"class": "Directory", "location": "me/pipelines/x/r1/out", "listing": []},
        "count": 3,
    }
    assert output_files(outputs) == [
        {"output": "banner", "class": "File", "ref": "me/pipelines/x/r1/banner.txt", "size": 12},
        {"output": "pages", "class": "File", "ref": "me/pipelines/x/r1/a.png", "size": None},
        {"output": "folder", "class": "Directory", "ref": "me/pipelines/x/r1/out", "size": None},
    ]
    assert output_files(None) == []
