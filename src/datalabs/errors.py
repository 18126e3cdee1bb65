"""Domain errors. Services raise these; the API turns them into `{"error": {code, message}}`."""

from __future__ import annotations


class DatalabsError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class Invalid(DatalabsError):
    status, code = 422, "invalid"


class BadRequest(DatalabsError):
    """A request the protocol itself calls malformed (e.g. STAC API parameters): 400, not 422."""

    status, code = 400, "bad_request"


class Unauthorized(DatalabsError):
    status, code = 401, "unauthorized"


class Forbidden(DatalabsError):
    status, code = 403, "forbidden"


class NotFound(DatalabsError):
    status, code = 404, "not_found"


class Conflict(DatalabsError):
    status, code = 409, "conflict"


class BadGateway(DatalabsError):
    """A lab (the user's own code) did not do what the platform asked of it."""

    status, code = 502, "bad_gateway"


class Unavailable(DatalabsError):
    """A service the platform depends on (a cluster's controller) did not answer; nothing was changed."""

    status, code = 503, "unavailable"


class TooLarge(DatalabsError):
    status, code = 413, "too_large"


class TooManyRequests(DatalabsError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after
