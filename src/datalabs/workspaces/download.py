"""Responses that send a file (with single-range `Range` support) or a folder as a streamed zip.

Files are always sent as attachments in a sandbox: a user's HTML must never run on the platform's origin."""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from email.utils import formatdate
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from datalabs.workspaces.tree import Tree

CHUNK = 1 << 20
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-cache",
}


def disposition(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_") or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(first, last) byte of a single `bytes=` range; None to send everything (no header, or a form we
    do not serve partially, such as several ranges); False when it cannot be satisfied (416)."""
    if not header:
        return None
    match = RANGE_RE.fullmatch(header.strip())
    if not match or match[1] == match[2] == "":
        return None
    if match[1] == "":  # the last N bytes
        n = int(match[2])
        return (max(size - n, 0), size - 1) if n and size else False
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or last < first:
        return False
    return first, last


def file_response(tree: Tree, parts: tuple[str, ...], range_header: str | None) -> Response:
    fd, st = tree.open(parts)
    size = st.st_size
    wanted = parse_range(range_header, size)
    headers = {
        **SAFE_HEADERS,
        "Accept-Ranges": "bytes",
        "Content-Disposition": disposition(parts[-1]),
        "Last-Modified": formatdate(st.st_mtime, usegmt=True),
        "ETag": f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"',
    }
    media = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    if wanted is False:
        os.close(fd)
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = wanted if wanted else (0, size - 1)
    if wanted:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(max(last - first + 1, 0))
    return StreamingResponse(
        _read(fd, first, last + 1), status_code=206 if wanted else 200, media_type=media, headers=headers
    )


def _read(fd: int, start: int, end: int) -> Iterator[bytes]:
    """Sync generator (Starlette runs each step in a worker thread); closes the fd however it ends."""
    try:
        pos = start
        while pos < end:
            chunk = os.pread(fd, min(CHUNK, end - pos), pos)
            if not chunk:
                break  # the file shrank meanwhile: stop rather than pad
            pos += len(chunk)
            yield chunk
    finally:
        os.close(fd)


def zip_response(tree: Tree, parts: tuple[str, ...], name: str) -> Response:
    body = tree.zip(parts)
    first = next(body, b"")  # a missing folder fails here, before the 200 is sent
    headers = {**SAFE_HEADERS, "Content-Disposition": disposition(f"{name}.zip")}

    def stream() -> Iterator[bytes]:
        if first:
            yield first
        yield from body

    return StreamingResponse(stream(), media_type="application/zip", headers=headers)
