"""Errors that render themselves in the SP-API error shape `{"errors":[{"code","message","details"?}]}`."""

from __future__ import annotations

from typing import Any

__all__ = [
    "SpApiError",
    "InvalidInput",
    "NotFound",
    "Unauthorized",
    "QuotaExceeded",
    "InternalFailure",
    "ServiceUnavailable",
    "Conflict",
    "UnsupportedMediaType",
    "LwaError",
]


class SpApiError(Exception):
    status = 500
    code = "InternalFailure"
    default_message = "We encountered an internal error. Please try again."
    error_type: str | None = None  # x-amzn-ErrorType header

    def __init__(self, message: str | None = None, *, code: str | None = None, details: str | None = None) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details = details
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"errors": [error]}

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.error_type} if self.error_type else {}


class InvalidInput(SpApiError):
    status = 400
    code = "InvalidInput"
    default_message = "Invalid Input"


class NotFound(SpApiError):
    status = 404
    code = "NotFound"
    default_message = "The resource specified does not exist."


class Unauthorized(SpApiError):
    status = 403
    code = "Unauthorized"
    default_message = "Access to requested resource is denied."
    error_type = "AccessDeniedException"

    def __init__(self, message: str | None = None, *, code: str | None = None, details: str | None = "") -> None:
        super().__init__(message, code=code, details=details)


class QuotaExceeded(SpApiError):
    status = 429
    code = "QuotaExceeded"
    default_message = "You exceeded your quota for the requested resource."
    error_type = "TooManyRequestsException"


class InternalFailure(SpApiError):
    status = 500


class ServiceUnavailable(SpApiError):
    status = 503
    code = "ServiceUnavailable"
    default_message = "Service temporarily unavailable. Please try again."


class Conflict(SpApiError):
    status = 409
    code = "Conflict"
    default_message = "The resource specified conflicts with the current state."


class UnsupportedMediaType(SpApiError):
    status = 415
    code = "UnsupportedMediaType"
    default_message = "The request's Content-Type header is invalid."


class LwaError(Exception):
    """An OAuth-style LWA error: `{"error": "...", "error_description": "..."}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
