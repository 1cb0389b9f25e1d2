"""Errors that reach the caller as a 4xx JSON body: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class BadRequest(HubError):
    status, code = 400, "bad_request"


class Unauthorized(HubError):
    status, code = 401, "unauthorized"


class Forbidden(HubError):
    status, code = 403, "forbidden"


class NotFound(HubError):
    status, code = 404, "not_found"


class Conflict(HubError):
    status, code = 409, "conflict"


class TooLarge(HubError):
    status, code = 413, "too_large"


class TooManyRequests(HubError):
    status, code = 429, "rate_limited"


class UnsupportedMediaType(HubError):
    status, code = 415, "unsupported_type"


class Invalid(HubError):
    status, code = 422, "invalid"
