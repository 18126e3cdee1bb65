"""Bringing a datalab's sources in: uploaded files or a zip, a git clone, a workspace folder.

Everything lands in a fresh staging directory through `Staging`, which checks every entry's name and
size before a byte is written: no absolute paths, no `..`, no symlinks or devices, no more than
`Limits` allow in files, bytes or compression ratio (a zip's declared sizes are not trusted: bytes are
counted while they are written). A rejected source leaves nothing behind. Errors name the entry.

A zip is checked from its end record before its central directory is read (`zipfile` builds an object
per entry: millions of tiny entries would cost gigabytes before any count could refuse them). A member
that lies about its size is cut at the size it declares and then fails its CRC. Archives inside the
sources (a zip in the zip, wheels) are files like any other: the platform never unpacks them.
"""

from __future__ import annotations

import errno
import lzma
import os
import shutil
import stat
import subprocess
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from datalabs.errors import DatalabsError, Invalid, TooLarge
from datalabs.sandbox import fs
from datalabs.workspaces.paths import check_name

CHUNK = 1 << 16
# Bytes of central directory allowed per entry: a 46-byte record plus a long name and its extra fields.
DIRECTORY_BYTES_PER_ENTRY = 1024
# What a corrupt or hostile member can raise while it is inflated (beyond zipfile's own BadZipFile).
_UNPACK_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,  # compression methods zipfile does not know
    RuntimeError,  # encrypted members
    EOFError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
)


@dataclass(frozen=True)
class Limits:
    max_files: int = 5000
    max_file_bytes: int = 200 * 2**20
    max_total_bytes: int = 500 * 2**20
    max_ratio: int = 100  # uncompressed / compressed, per zip entry above 1 MiB
    git_timeout: float = 120.0


DEFAULT_LIMITS = Limits()


def safe_parts(name: str) -> tuple[str, ...]:
    """The relative path components of an archive or upload entry; Invalid naming it otherwise."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise Invalid(f"'{name}': absolute paths are not allowed in sources", code="unsafe_path")
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p)
    if not parts:
        raise Invalid(f"'{name}': empty file name", code="unsafe_path")
    if ".." in parts:
        raise Invalid(f"'{name}': '..' would write outside the sources (zip-slip)", code="unsafe_path")
    try:
        for part in parts:
            check_name(part)
    except Invalid as exc:
        raise Invalid(f"'{name}': {exc.message}", code="unsafe_path") from None
    return parts


class Staging:
    """A new directory that sources are written into, counted against the limits."""

    def __init__(self, root: Path, limits: Limits = DEFAULT_LIMITS):
        self.root, self.limits = root, limits
        self.files = 0
        self.total = 0
        root.mkdir(parents=True, exist_ok=False)

    def _count(self, name: str, size: int) -> None:
        if size > self.limits.max_file_bytes:
            raise TooLarge(
                f"'{name}' is larger than {self.limits.max_file_bytes // 2**20} MiB", code="source_too_large"
            )
        if self.total + size > self.limits.max_total_bytes:
            raise TooLarge(
                f"'{name}': the sources exceed {self.limits.max_total_bytes // 2**20} MiB in total",
                code="source_too_large",
            )

    def write(self, name: str, stream: BinaryIO, declared: int | None = None) -> None:
        """Copy one file to its place below the root, counting bytes as they come."""
        parts = safe_parts(name)
        self.files += 1
        if self.files > self.limits.max_files:
            raise TooLarge(f"'{name}': more than {self.limits.max_files} files", code="too_many_files")
        if declared is not None:
            self._count(name, declared)
        target = self.root.joinpath(*parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent.resolve() != self.root.resolve().joinpath(*parts[:-1]):
                raise Invalid(f"'{name}' would leave the sources folder", code="unsafe_path")
            # O_EXCL|O_NOFOLLOW: never through a symlink, never over an earlier entry of the same name.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:  # twice the same name, a file where a folder is, a name too long
            raise Invalid(f"'{name}': cannot be written ({exc.strerror})", code="unsafe_path") from None
        written = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                written += len(chunk)
                self._count(name, written)  # a lying zip header cannot get past the limits
                out.write(chunk)
        self.total += written

    def mkdir(self, name: str) -> None:
        try:
            self.root.joinpath(*safe_parts(name)).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Invalid(f"'{name}': cannot be made a folder ({exc.strerror})", code="unsafe_path") from None

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def extract_zip(staging: Staging, archive: BinaryIO) -> None:
    _check_directory(staging.limits, archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, *_UNPACK_ERRORS) as exc:
        raise Invalid(f"not a valid zip archive: {exc}", code="bad_archive") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > staging.limits.max_files:
            raise TooLarge(
                f"the archive has more than {staging.limits.max_files} entries", code="too_many_files"
            )
        declared = sum(i.file_size for i in infos)
        if declared > staging.limits.max_total_bytes:
            raise TooLarge(
                f"the archive unpacks to {declared // 2**20} MiB, more than "
                f"{staging.limits.max_total_bytes // 2**20} MiB (zip bomb?)",
                code="zip_bomb",
            )
        for info in infos:  # check every name before writing anything
            safe_parts(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise Invalid(f"'{info.filename}' is a symbolic link; links are not allowed", code="symlink")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # 0: type not recorded
                raise Invalid(f"'{info.filename}' is not a regular file", code="unsafe_path")
            if info.file_size > 2**20 and info.file_size > staging.limits.max_ratio * max(
                info.compress_size, 1
            ):
                raise TooLarge(
                    f"'{info.filename}' compresses {info.file_size // max(info.compress_size, 1)}:1 "
                    f"(limit {staging.limits.max_ratio}:1): refused as a zip bomb",
                    code="zip_bomb",
                )
        for info in infos:
            if info.is_dir():
                staging.mkdir(info.filename)
                continue
            try:
                with zf.open(info) as member:
                    staging.write(info.filename, member, info.file_size)
            except DatalabsError:
                raise
            except (*_UNPACK_ERRORS, OSError) as exc:  # OSError: bz2's "Invalid data stream", a full disk
                reason = getattr(exc, "strerror", None) or exc  # never a server path
                raise Invalid(f"'{info.filename}': cannot unpack ({reason})", code="bad_archive") from None


def _check_directory(limits: Limits, archive: BinaryIO) -> None:
    """Refuse a zip whose end record declares more entries, or a larger central directory, than
    `limits` allow, before `zipfile` reads that directory. zipfile's own end-record reader is used so
    both see the same numbers (a second parser could be fooled where zipfile is not)."""
    try:
        end = zipfile._EndRecData(archive)  # private, but the very reader ZipFile uses
    except (OSError, *_UNPACK_ERRORS):
        end = None
    finally:
        archive.seek(0)
    if end is None:
        return  # not a zip: ZipFile says so
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > limits.max_files or size > limits.max_files * DIRECTORY_BYTES_PER_ENTRY:
        raise TooLarge(
            f"the archive has more than {limits.max_files} entries (its directory lists {entries:,} in "
            f"{size // 1024:,} KiB)",
            code="too_many_files",
        )


def copy_tree(staging: Staging, source: Path, what: str, beneath: Path | None = None) -> None:
    """Copy a directory (a workspace folder, a fresh clone) without following or keeping symlinks.

    Walked from directory fds (sandbox/fs.py): a lab writing its workspace while we copy cannot swap a
    folder for a link and have root copy another user's files into the sources. With `beneath` (the
    workspace's root), `source` itself is reached from there without following any link."""
    top = _open_folder(source, beneath, what)
    try:
        for folder, dirs, others, dfd in fs.walk(top):
            dirs[:] = sorted(d for d in dirs if d != ".git")  # fs.walk descends only into what is left
            for name in sorted(others):
                rel = name if folder == "." else f"{folder}/{name}"
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
                except OSError as exc:
                    why = (
                        "a symbolic link; links are not allowed" if exc.errno == errno.ELOOP else "unreadable"
                    )
                    raise Invalid(f"'{rel}' in {what} is {why}", code="symlink") from None
                with os.fdopen(fd, "rb") as stream:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        raise Invalid(f"'{rel}' in {what} is not a regular file", code="unsafe_path")
                    staging.write(rel, stream, st.st_size)
    finally:
        os.close(top)


def _open_folder(source: Path, beneath: Path | None, what: str) -> int:
    try:
        if beneath is None:
            return os.open(source, fs.DIR_FLAGS)
        root = os.open(beneath, fs.DIR_FLAGS)
        try:
            rel = os.path.relpath(source, beneath)
            return fs.openat2(
                root, rel, os.O_RDONLY | os.O_DIRECTORY, fs.RESOLVE_BENEATH | fs.RESOLVE_NO_SYMLINKS
            )
        finally:
            os.close(root)
    except OSError:
        raise Invalid(f"{what} is not a folder (or is reached through a link)", code="not_a_folder") from None


def write_files(staging: Staging, files: Iterable[tuple[str, BinaryIO]]) -> None:
    """Uploaded files (names may carry relative folders); a single .zip is unpacked instead."""
    files = list(files)
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        extract_zip(staging, files[0][1])
        return
    for name, stream in files:
        staging.write(name, stream)


ALLOWED_SCHEMES = ("https://", "http://", "git://", "ssh://")


def git_clone(staging: Staging, url: str, ref: str = "", *, allow_local: bool = False) -> str:
    """Shallow-clone `url` (at branch or tag `ref`) into the staging dir; returns the commit id.

    Local paths and file:// URLs would let a user read any repository on the platform's host, so they
    are refused unless `allow_local` (set by the operator, and by the tests)."""
    local = url.startswith(("file://", "/"))
    if (
        url.startswith("-")
        or ref.startswith("-")
        or not (url.startswith(ALLOWED_SCHEMES) or (local and allow_local))
    ):
        raise Invalid(
            f"'{url}' is not a git URL this platform clones (https, http, git or ssh)", code="bad_url"
        )
    clone = staging.root.parent / (staging.root.name + ".clone")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(staging.root.parent),
        "GIT_TERMINAL_PROMPT": "0",  # never wait for a password nobody will type
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    argv = ["git", "-c", "core.symlinks=true", "clone", "--quiet", "--depth", "1", "--no-tags"]
    argv += ["--branch", ref] if ref else []
    try:
        done = subprocess.run(
            [*argv, "--", url, str(clone)],
            env=env,
            capture_output=True,
            text=True,
            timeout=staging.limits.git_timeout,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["git clone failed"])[-1]
            raise Invalid(f"cannot clone '{url}': {last}", code="clone_failed")
        commit = subprocess.run(
            ["git", "-C", str(clone), "rev-parse", "HEAD"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        copy_tree(staging, clone, f"the repository {url}")
        return commit
    except subprocess.TimeoutExpired:
        raise Invalid(
            f"cloning '{url}' took longer than {staging.limits.git_timeout:.0f} s", code="clone_failed"
        ) from None
    finally:
        shutil.rmtree(clone, ignore_errors=True)


def flatten_single_folder(root: Path) -> None:
    """Zips of a folder (and GitHub archives) hold one top folder: its content becomes the sources."""
    entries = list(root.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not (root / "datalab-meta.yml").exists():
        inner = entries[0]
        moved = root / ".flatten"
        inner.rename(moved)
        for child in moved.iterdir():
            child.rename(root / child.name)
        moved.rmdir()
