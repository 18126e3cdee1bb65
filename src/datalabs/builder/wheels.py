"""Local wheel directories builds install from besides the package index (`builder.find_links`).

Sites keep wheels on disk that the index does not have or should not be asked for (a CPU build of
PyTorch beside the index's CUDA ones, an air-gapped mirror). pip finds them through its own
configuration (`find-links` in pip.conf or PIP_FIND_LINKS); uv reads none of it, so the builder passes
them on as `--find-links` and binds each read-only into the build's sandbox. Unset, the setting takes
pip's configured find-links; only existing local directories count (URLs stay pip's business).
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
from pathlib import Path

from datalabs.config import Settings

log = logging.getLogger(__name__)


def find_links(settings: Settings) -> tuple[Path, ...]:
    """The wheel directories builds look in: the operator's list, else pip's configured find-links."""
    configured = settings.builder.find_links
    paths = pip_find_links() if configured is None else tuple(Path(p) for p in configured)
    return tuple(p.resolve() for p in paths if p.is_absolute() and p.is_dir())


@functools.cache
def pip_find_links() -> tuple[Path, ...]:
    """pip's `find-links` (the environment's PIP_FIND_LINKS first, then its configuration files), as
    `pip config list` reports them: local directories only."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("pip's find-links could not be read (%s): builds use the package index alone", exc)
        return ()
    return parse_config_list(out)


def parse_config_list(text: str) -> tuple[Path, ...]:
    """The find-links directories in `pip config list` output, the environment's before the files'."""
    by_origin: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        section, _, key = name.strip().rpartition(".")
        if not sep or key != "find-links" or section not in (":env:", "global", "install"):
            continue
        by_origin.setdefault(section, []).extend(value.strip().strip("'\"").split())
    for origin in (":env:", "install", "global"):
        if origin in by_origin:
            links = [v.removeprefix("file://") for v in by_origin[origin]]
            return tuple(Path(v) for v in links if v.startswith("/"))
    return ()
