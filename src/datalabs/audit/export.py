"""Audit records as CSV, safe to open in a spreadsheet: a cell starting with = + - @ (or a tab/CR, which
some spreadsheets strip first) is prefixed with ' so it is never taken for a formula."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from datalabs.db.models import AuditRecord

COLUMNS = ("id", "at", "who", "what", "target", "client", "outcome", "detail", "prev_hash", "hash")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def row(rec: AuditRecord) -> list[str]:
    return [cell(rec.at.isoformat() if name == "at" else getattr(rec, name)) for name in COLUMNS]


def csv_lines(records: Iterable[AuditRecord]) -> Iterator[str]:
    """The header then one CSV line per record, as strings (for streaming)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for rec in records:
        writer.writerow(row(rec))
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():  # no record: the header alone
        yield buf.getvalue()
