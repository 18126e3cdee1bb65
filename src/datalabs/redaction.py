"""Server paths out of what users read: failure reasons of runs, builds and labs, and API errors.

Engines and tools describe failures with the paths they saw: the run's work directory, the packed
document in the platform's store (cwltool even makes it relative to the worker's directory:
`../../srv/datalabs/pipelines/documents/v5.cwl`), a workspace's place on disk. Those tell a user how
the server is laid out and nothing about their own objects. `Redactor` rewrites every path-like word:

- under a known root (the run's folder, the pipeline's document, the user's workspaces): the name the
  user knows (`<run>/…`, `calibrate.cwl`, `my_workspace/…`, `team_workspaces/<team>/…`);
- any other absolute path, DATALABS_HOME included: `…/<last component>` (the file's own name stays,
  its place on the server goes);
- paths a lab shows its user (`/media/home/…`, `/media/data/…`) and anything that is not a path
  (URLs, `key=value`, plain words) stay as they are.

Apply it where reasons are stored, so the API, pages, notifications and e-mails all get the same text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from datalabs.config import Settings

ELLIPSIS = "…"
# Paths inside a lab, as its user sees them (DESIGN §5): theirs to read.
LAB_PATHS = ("/media/home/", "/media/data/", "/media/notebooks/", "/run/datalab/")
# A URL (kept whole), or a path-like word: no spaces, quotes, brackets, separators ':' ',' ';' '=' (so
# `v1.cwl:1:141:` and `--outdir=/x` give the path alone).
_URL = r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"`<>]*"
_WORD = re.compile(rf"{_URL}|[^\s'\"`()<>\[\]{{}},;|:=*?]+")


class Redactor:
    """`redactor(text)` -> text with server paths replaced (see the module docstring).

    `roots`: (absolute path, name the user knows) pairs; the longest matching root wins. A root with an
    empty name is only known to be the server's: paths under it become `…/<last component>`.
    `others`: False keeps absolute paths under no root as they are (for messages that may quote a path
    the reader gave, e.g. an administrator's volume directory)."""

    def __init__(
        self, roots: Iterable[tuple[str | Path, str]], cwd: str | None = None, others: bool = True
    ) -> None:
        expanded: dict[str, str] = {}
        for path, name in roots:
            for variant in {os.path.abspath(path), os.path.realpath(path)}:
                expanded.setdefault(variant.rstrip("/") or "/", name)
        # Longest first: the run's folder before DATALABS_HOME that contains it.
        self.roots = sorted(expanded.items(), key=lambda item: len(item[0]), reverse=True)
        self.cwd = cwd if cwd is not None else os.getcwd()
        self.others = others

    def __call__(self, text: str) -> str:
        if not text or "/" not in text:
            return text
        return _WORD.sub(self._word, text)

    def _word(self, match: re.Match[str]) -> str:
        word = match.group(0)
        if "/" not in word or word.startswith("//") or "://" in word:  # not a path, or a URL
            return word
        absolute = word.startswith("/")
        if absolute and word.startswith(LAB_PATHS):
            return word
        full = os.path.normpath(word if absolute else os.path.join(self.cwd, word))
        for root, name in self.roots:
            if full == root or full.startswith(root + "/"):
                if not absolute and (self.cwd + "/").startswith(root + "/"):
                    return word  # a relative name inside the server's own folder: not ours to judge
                rest = full[len(root) :].lstrip("/")
                if name:
                    return f"{name}/{rest}" if rest else name
                return _tail(full)
        return _tail(full) if absolute and self.others else word


def _tail(path: str) -> str:
    base = os.path.basename(path.rstrip("/"))
    return f"{ELLIPSIS}/{base}" if base else ELLIPSIS


def platform(settings: Settings, others: bool = True) -> Redactor:
    """Knows only that DATALABS_HOME is the server's: for messages not about one user's objects."""
    return Redactor([(settings.home, "")], others=others)


def error_message(settings: Settings, message: str) -> str:
    """An error as the API and pages show it: DATALABS_HOME never; paths the caller may have given
    (anything outside the home) stay, so `no such directory /srv/archive` still says which."""
    return platform(settings, others=False)(message) if "/" in message else message


def for_user(settings: Settings, user: str, teams: Iterable[str] = ()) -> Redactor:
    """Also names the user's workspaces as a lab shows them."""
    spaces = settings.home / "workspaces"
    roots: list[tuple[str | Path, str]] = [(settings.home, ""), (spaces / "users" / user, "my_workspace")]
    roots += [(spaces / "teams" / team, f"team_workspaces/{team}") for team in teams]
    return Redactor(roots)


def for_run(
    settings: Settings, run_dir: Path, document: Path, pipeline: str, user: str, teams: Iterable[str] = ()
) -> Redactor:
    """For a pipeline run: its folder is `<run>`, its packed document `<pipeline>.cwl`."""
    base = for_user(settings, user, teams)
    extra = [(run_dir, "<run>"), (document, f"{pipeline}.cwl")]
    return Redactor([*base.roots, *extra], base.cwd)
