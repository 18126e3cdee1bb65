"""Request bodies (limits.py): past its route's limit a body is refused with 413 `too_large` in the API's
error format, whether its size was announced or not; upload routes take more; the streamed workspace
upload is bounded by the quota alone."""

from __future__ import annotations

import io
import zipfile

import pytest

from datalabs import limits

MiB = 2**20


@pytest.fixture
def ada(people):
    people.user("ada")
    return people.login("ada")


def _too_large(r) -> str:
    assert r.status_code == 413, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "too_large", error
    return error["message"]


def test_json_body_past_the_default_limit(ada):
    body = b'{"cwl": "' + b"x" * (limits.BODY + 1) + b'"}'
    r = ada.post("/api/v1/pipelines/validate", content=body, headers={"Content-Type": "application/json"})
    assert _too_large(r) == "the request body is larger than this route accepts (8 MiB)"


def test_unannounced_body_is_counted_as_it_comes(ada):
    def chunks():
        yield b'{"cwl": "'
        for _ in range(limits.BODY // MiB + 1):
            yield b"x" * MiB
        yield b'"}'

    r = ada.post("/api/v1/pipelines/validate", content=chunks(), headers={"Content-Type": "application/json"})
    _too_large(r)


def test_announced_size_is_refused_before_reading(ada):
    """The header alone decides: the body sent is tiny, the route never reads it."""
    r = ada.post(
        "/api/v1/apps/import",
        content=b"--x--\r\n",
        headers={
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(limits.SOURCES + 1),
        },
    )
    assert "MiB" in _too_large(r)


def test_upload_routes_take_more_than_the_default(ada):
    assert ada.post("/api/v1/apps", json={"name": "big"}).status_code == 201
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("datalab-meta.yml", "title: Big\nabstract: x\ndistribution.license: MIT\n")
        zf.writestr("data.bin", bytes(range(256)) * (40 * 4096))  # 40 MiB, stored
    assert len(buf.getvalue()) > limits.BODY
    r = ada.post(
        "/api/v1/apps/big/versions", files=[("files", ("big.zip", buf.getvalue(), "application/zip"))]
    )
    assert r.status_code == 202, r.text[:300]


def test_streamed_workspace_upload_has_no_limit_of_its_own(ada):
    r = ada.put("/api/v1/workspaces/me/files/big.bin", content=b"y" * (limits.BODY + MiB))
    assert r.status_code in (200, 201), r.text
