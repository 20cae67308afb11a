"""Errors that services raise; the web layer turns each into one HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of service errors: a machine code, a human message and, when known, the field."""

    status = 400
    default_code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code or self.default_code


class ValidationError(ServiceError):
    """Input that can never be accepted as it is (422)."""

    status = 422
    default_code = "invalid"


class NotFound(ServiceError):
    """The thing named does not exist (404)."""

    status = 404
    default_code = "not_found"


class Conflict(ServiceError):
    """The request clashes with the current state (409)."""

    status = 409
    default_code = "conflict"


class Forbidden(ServiceError):
    """A rule forbids this actor from doing this (403)."""

    status = 403
    default_code = "forbidden"
