"""Why a request is not forwarded: rendered like the platform API's errors, or, for a browser loading a
page, as a small HTML page of its own (the proxy has no templates, and on a lab's origin the platform's
stylesheets would not load)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Datalabs</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}}</style>
</head><body><main><p>Error {status}</p><h1>{title}</h1><p>{message}</p>
<p><a href="{back}">Back to My datalabs</a></p></main></body></html>
"""
_TITLES = {401: "Please log in", 403: "Not allowed", 404: "Not found"}


@dataclass(frozen=True)
class Refusal:
    """An answer instead of the lab's: `{"error": {"code", "message"}}` with HTTP `status`."""

    status: int
    code: str
    message: str

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()

    def page(self, back: str) -> bytes:
        """The refusal as an HTML page for a browser, with a link to `back` (the platform's labs list)."""
        title = _TITLES.get(self.status, "Lab not available")
        message = self.message[:1].upper() + self.message[1:] + "."
        fill = {"status": self.status, "title": title, "message": message, "back": back}
        return _PAGE.format(**{k: html.escape(str(v)) for k, v in fill.items()}).encode()


NOT_AUTHENTICATED = Refusal(401, "not_authenticated", "log in or send 'Authorization: Bearer <token>'")
NOT_A_LAB_PATH = Refusal(404, "not_found", "not a lab path")
AUTH_UNAVAILABLE = Refusal(503, "auth_unavailable", "authentication is unavailable; try again shortly")


def not_found(lab_id: str) -> Refusal:
    return Refusal(404, "lab_not_found", f"no lab '{lab_id}'")


def forbidden(lab_id: str) -> Refusal:
    # Only for the lab's owner (or, for a team lab, a member) whose credential may not open it (a token
    # without the scope, a request from inside a lab): anyone else gets not_found (issue 19: a third user
    # with the link learns nothing).
    return Refusal(403, "lab_forbidden", f"lab '{lab_id}' cannot be opened with this credential")


def unreachable(lab_id: str, why: object) -> Refusal:
    return Refusal(
        502, "lab_unreachable", f"lab '{lab_id}' is not answering ({why}); it may be starting or stopping"
    )


def timed_out(lab_id: str) -> Refusal:
    return Refusal(504, "lab_timeout", f"lab '{lab_id}' did not answer in time")
