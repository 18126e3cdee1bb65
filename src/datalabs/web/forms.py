"""One form POST, the same way on every page: call the service, commit, and go on (Post/Redirect/Get with a
flash message); on a refusal roll back and show the form's page again with the message and the refusal's
status. The CSRF check happens before, in the route's `posting_user`/`posting_admin` dependency."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from datalabs.errors import DatalabsError
from datalabs.web.render import redirect

T = TypeVar("T")


def submit(
    request: Request,
    db: Session,
    action: Callable[[], T],
    *,
    refused: Callable[[DatalabsError], Response],
    to: str = "",
    done: str = "",
    then: Callable[[T], Response] | None = None,
) -> Response:
    """Run `action` (the one service call of this user action) and commit. Then redirect to `to` with the
    flash message `done`, or answer `then(result)` when the page does more (say, shows a secret once).
    A `DatalabsError` rolls everything back and answers `refused(error)`: the page again, the message
    where the form showed it; `refused` may re-raise for refusals the site's error page answers."""
    try:
        result = action()
        db.commit()
    except DatalabsError as exc:
        db.rollback()
        return refused(exc)
    return then(result) if then is not None else redirect(request, to, done)


def shown_again(page: Callable[..., Response], where: str, **again) -> Callable[[DatalabsError], Response]:
    """A `refused` for pages built as `page(errors=..., status=..., **again)`: the message at `where`."""
    return lambda exc: page(errors={where: exc.message}, status=exc.status, **again)
