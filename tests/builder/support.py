"""Test material for the builder: a tiny wheel written by hand (no network, no build backend), sources
folders and zips."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

META = """\
title: Tiny analysis
abstract: A notebook that uses a tiny package.
version: "0.1.0"
creator.name: Ada Lovelace
distribution.license: {license}
keywords: [test, tiny]
"""
NOTEBOOK = (
    '{"cells": [{"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [],'
    ' "source": ["import dl_tinypkg\\n", "dl_tinypkg.VALUE"]}], "metadata": {}, "nbformat": 4,'
    ' "nbformat_minor": 5}'
)


def write_wheel(folder: Path, name: str = "dl_tinypkg", version: str = "1.0", value: int = 42) -> Path:
    """A valid pure-Python wheel holding module `name` with `VALUE = value`."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def make_sources(folder: Path, *, requirement: str = "dl-tinypkg==1.0", license: str = "MIT") -> Path:
    """A datalab folder: metadata, a notebook, a requirements.txt installing from ./wheels only."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalab-meta.yml").write_text(META.format(license=license))
    (folder / "analysis.ipynb").write_text(NOTEBOOK)
    (folder / "requirements.txt").write_text(f"--no-index\n--find-links wheels\n{requirement}\n")
    write_wheel(folder / "wheels")
    return folder


def zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def evil_zip(
    entries: dict[str, bytes], symlink: str | None = None, compression=zipfile.ZIP_DEFLATED
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            zf.writestr(info, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()
