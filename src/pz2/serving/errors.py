"""The errors a request can meet, and the one table from error to HTTP status."""

from __future__ import annotations

from pz2.errors import ContextLengthError, ModelError, Pz2Error


INTERNAL = "internal error; the server log has the details"   # what a client sees of a bug: no internals


class RequestError(Pz2Error):
    """A bad request: the message names the parameter and what to send instead."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | int | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


class AuthError(RequestError):
    status = 401
    type = "authentication_error"


class NotFoundError(RequestError):
    status = 404
    type = "not_found_error"


class BodyTooLargeError(RequestError):
    status = 413


class OverloadedError(RequestError):
    """Too many requests waiting; the client should retry after `retry_after` seconds."""

    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, code="too_many_requests")
        self.retry_after = retry_after


class NotReadyError(RequestError):
    status = 503
    type = "service_unavailable"


def as_request_error(exc: Exception) -> Exception:
    """The one place an engine's refusal of too long messages becomes the request's fault: 400
    `context_length_exceeded`, whether the API's check or the engine itself found it."""
    if isinstance(exc, ContextLengthError):
        return RequestError(str(exc), param="messages", code="context_length_exceeded")
    return exc


def http_status(exc: Exception) -> tuple[int, str]:
    """(status, OpenAI error type) of an exception: a request's own fault is 4xx, the server's 5xx."""
    if isinstance(exc, RequestError):
        return exc.status, exc.type
    if isinstance(exc, ModelError):
        return 500, "server_error"
    if isinstance(exc, Pz2Error):
        return 400, "invalid_request_error"
    return 500, "server_error"
