"""Imported by the budget forkserver (`documents.BUDGET`, `sandbox.budget.preload`), never by hand: it
validates a tiny document once, so cwltool's schemas and caches (~0.5 s to load) are in memory before
any validation is forked from that process. Each validation then starts warm, in milliseconds."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from datalabs.pipelines import documents

log = logging.getLogger(__name__)

TINY = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: echo\ninputs: []\noutputs: []\n"


def warm() -> None:
    """Never raises: an error here would stop the forkserver itself (tasks then start cold)."""
    try:
        with tempfile.TemporaryDirectory(prefix="datalabs-cwl-warm-") as tmp:
            path = Path(tmp) / "warm.cwl"
            path.write_text(TINY)
            documents._load_file(path, path.name)
    except Exception:
        log.exception("warming cwltool in the budget forkserver failed")


warm()
