"""Retention at the station: keep the event windows, age the rest of the high-fidelity data out.

This is the station's own duty, not a pipeline step: pipelines read data volumes read-only (the station
folder is one), and only the station, which writes the folder, may delete from it, as an edge recorder's
ring buffer does. Two steps, in this order:

- `keep`: the event windows the recorder wrote (`<STATION>_<time>Z_event.nc`, NetCDF-4, found below the
  given folders, e.g. the runs' output folders) are copied into the station's `kept/` folder, which nothing
  ever deletes from and which is published as the explorer's `station-events` collection;
- `age_out`: high-fidelity chunks (`hifi/<STATION>_<YYYYMMDD>T<HHMM>_hifi.nc`) whose minute ended
  `retention` seconds or more before the station's clock (the end of its newest chunk, so a fast-forwarded
  demo ages out in simulated time) are deleted. The low-fidelity stream is cheap and is kept.

Both walk from directory fds and never follow a link: only regular files named as the station names
them are deleted, in `hifi/` itself, and a link (to anywhere) is never followed, copied or deleted
through, so nothing outside the station folder is ever touched.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from datalabs.demo import station as st
from datalabs.errors import Invalid
from datalabs.sandbox import fs

KEPT_NAME = re.compile(r"^[A-Z0-9]{3,12}_\d{8}T\d{6}(\d{2})?Z_event\.nc$")
MAX_KEPT_BYTES = 64 * 2**20  # one window: 100 Hz float32 for hours would be far less
MAX_FILES_SEEN = 100_000
NETCDF4_MAGIC = b"\x89HDF\r\n\x1a\n"  # what the recorder writes (NetCDF-4 is HDF5)


@dataclass
class Report:
    kept: list[str] = field(default_factory=list)  # windows newly copied into kept/
    deleted: list[str] = field(default_factory=list)  # high-fidelity chunks aged out
    remaining: list[str] = field(default_factory=list)  # high-fidelity chunks still within retention
    skipped: list[str] = field(default_factory=list)  # entries left alone, with why
    waiting: list[str] = field(default_factory=list)  # old enough, but the recorder may still need them
    clock: datetime | None = None


def keep(out: Path, sources: list[Path], report: Report | None = None) -> Report:
    """Copy every event window found below `sources` into `out/kept/` (a name already there is left)."""
    report = report or Report()
    top = st.open_folder(out, create=False)
    try:
        kept_fd = st.subfolder(top, st.KEPT)
        try:
            for source in sources:
                _keep_from(Path(source), kept_fd, report)
        finally:
            os.close(kept_fd)
    finally:
        os.close(top)
    return report


def _keep_from(source: Path, kept_fd: int, report: Report) -> None:
    try:
        src_fd = os.open(Path(source).expanduser().resolve(), fs.DIR_FLAGS)
    except OSError as exc:
        raise Invalid(f"--keep-from {source}: not a folder ({exc.strerror})", code="bad_keep_from") from None
    seen = 0
    try:
        for folder, _dirs, others, dfd in fs.walk(src_fd):
            for name in others:
                seen += 1
                if seen > MAX_FILES_SEEN:
                    report.skipped.append(f"{source}: more than {MAX_FILES_SEEN} files, the rest not read")
                    return
                if not KEPT_NAME.match(name):
                    continue
                where = os.path.join(folder, name)
                if st_exists(kept_fd, name):
                    continue
                data = _read_regular(dfd, name)
                if data is None:
                    report.skipped.append(
                        f"{where}: not a NetCDF-4 file with one name, of at most {MAX_KEPT_BYTES} bytes"
                    )
                    continue
                st.write_atomic(kept_fd, name, data)
                report.kept.append(name)
    finally:
        os.close(src_fd)


def st_exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _read_regular(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None  # a link (ELOOP), vanished, unreadable: not ours to take
    try:
        info = os.fstat(fd)
        # One name only: a hard link to a file its maker did not write (made before links were
        # protected, or by its owner) is not an event window to publish.
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_KEPT_BYTES or info.st_nlink != 1:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_KEPT_BYTES + 1)
        return data if len(data) <= MAX_KEPT_BYTES and data.startswith(NETCDF4_MAGIC) else None
    finally:
        os.close(fd)


def clock(top_fd: int) -> datetime | None:
    """The station's clock: the end of its newest chunk (low- or high-fidelity), None if it has none."""
    newest = None
    for sub in (st.LOWFI, st.HIFI):
        try:
            fd = os.open(sub, fs.DIR_FLAGS, dir_fd=top_fd)
        except OSError:
            continue
        try:
            for name in os.listdir(fd):
                when = st.chunk_time(name)
                if when and (newest is None or when > newest):
                    newest = when
        finally:
            os.close(fd)
    return newest + timedelta(seconds=st.CHUNK_SECONDS) if newest else None


def age_out(
    out: Path,
    retention: float,
    report: Report | None = None,
    may_go: Callable[[datetime], bool] | None = None,
) -> Report:
    """Delete the high-fidelity chunks that ended `retention` seconds or more before the station's clock
    and, given `may_go` (a chunk's start -> whether the recorder is done with it), only those it allows."""
    if retention < 0:
        raise Invalid("--retention must not be negative", code="bad_option")
    report = report or Report()
    top = st.open_folder(out, create=False)
    try:
        report.clock = clock(top)
        if report.clock is None:
            return report
        limit = report.clock - timedelta(seconds=retention)
        hifi = st.subfolder(top, st.HIFI, create=False)
        try:
            _age_out(hifi, limit, report, may_go)
        finally:
            os.close(hifi)
    finally:
        os.close(top)
    return report


def _age_out(hifi: int, limit: datetime, report: Report, may_go) -> None:
    for name in sorted(os.listdir(hifi)):
        when = st.chunk_time(name)
        if when is None or not name.endswith("_hifi.nc"):
            if not name.startswith("."):
                report.skipped.append(f"hifi/{name}: not a high-fidelity chunk's name")
            continue
        info = os.stat(name, dir_fd=hifi, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            report.skipped.append(f"hifi/{name}: not a regular file (a link is never followed)")
            continue
        if when + timedelta(seconds=st.CHUNK_SECONDS) > limit:
            report.remaining.append(name)
            continue
        if may_go is not None and not may_go(when):
            report.waiting.append(name)
            continue
        # Unlinking a name in a folder fd removes that entry only: had it been swapped for a link since
        # the check above, the link would go, never what it points to.
        try:
            os.unlink(name, dir_fd=hifi)
        except FileNotFoundError:
            continue
        report.deleted.append(name)
