"""The exception hierarchy of the SP-API client.

Every error raised by a call carries the operation, the HTTP status, Amazon's error code and message, and the
`x-amzn-RequestId` Amazon support asks for. The class tells the caller what to do:

- `InvalidInput` (400): the request is wrong; fix it, do not retry.
- `Unauthorized` (401/403): the token was refreshed once and the call retried once; the seller's authorisation, the
  app's role or the request signature is wrong.
- `ResourceNotFound` (404): the SKU, order, feed or document does not exist.
- `Throttled`: the client's own limiter could not get a token within the call's time budget (for example the
  per-day cap is spent); nothing was sent. `QuotaExceeded` (a `Throttled`) is Amazon's 429 after every retry.
- `ServerError` (5xx) and `SpApiTimeout`: still failing after the bounded retries.
- `LwaError`: Login with Amazon refused to issue a token (`error` is the OAuth code, e.g. `invalid_grant`).
  `ReauthorizationRequired` (both an `LwaError` and an `Unauthorized`, code ``Unauthorized``) is LWA's
  ``invalid_grant`` for a refresh token: the seller revoked the app (or the token expired or was replaced); no retry
  can help, the seller must re-authorize and the new refresh token be configured.
- `FeedError`: a feed ended FATAL or CANCELLED, or got stuck (see `resources.spapi.feeds`).

Messages never contain tokens or secrets: the client redacts every credential it knows before raising.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SpApiError",
    "InvalidInput",
    "Unauthorized",
    "ResourceNotFound",
    "Throttled",
    "QuotaExceeded",
    "ServerError",
    "SpApiTimeout",
    "LwaError",
    "ReauthorizationRequired",
    "FeedError",
]


class SpApiError(Exception):
    """Base class of every SP-API client error.

    Attributes: `operation` (operationId, e.g. ``getListingsItem``), `status` (HTTP status or None when no response
    arrived), `amazon_code` (the first ``errors[].code`` Amazon sent, e.g. ``BAD_REQUEST``), `message` (Amazon's
    message or the client's explanation), `request_id` (``x-amzn-RequestId``), `errors` (Amazon's full error list).
    `code` is the project's code for the class (``InvalidInput``, ``Unauthorized``, ...).
    """

    code: str = "SpApiError"

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        status: int | None = None,
        amazon_code: str | None = None,
        request_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = message
        self.operation = operation
        self.status = status
        self.amazon_code = amazon_code
        self.request_id = request_id
        self.errors = list(errors or [])
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.code]
        if self.operation:
            parts.append(f"in {self.operation}")
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        text = " ".join(parts) + f": {self.message}"
        if self.amazon_code and self.amazon_code != self.code:
            text += f" [amazon code {self.amazon_code}]"
        if self.request_id:
            text += f" [x-amzn-RequestId {self.request_id}]"
        return text


class InvalidInput(SpApiError):
    """HTTP 400: Amazon rejected the request's parameters or body. Do not retry unchanged."""

    code = "InvalidInput"


class Unauthorized(SpApiError):
    """HTTP 401/403 after one forced token refresh and one retry: authorisation, role or signature is wrong."""

    code = "Unauthorized"


class ResourceNotFound(SpApiError):
    """HTTP 404: the addressed SKU, order, feed or document does not exist (for this seller and marketplace)."""

    code = "ResourceNotFound"


class Throttled(SpApiError):
    """The client's limiter could not obtain a token within the call's time budget; the request was not sent."""

    code = "Throttled"


class QuotaExceeded(Throttled):
    """HTTP 429 (Amazon's ``QuotaExceeded``) on every attempt within the retry limits."""

    code = "QuotaExceeded"


class ServerError(SpApiError):
    """HTTP 5xx (or another unexpected status) after the bounded retries."""

    code = "ServerError"


class SpApiTimeout(SpApiError):
    """Connect/read timeouts or dropped connections on every attempt within the retry limits."""

    code = "Timeout"


class LwaError(SpApiError):
    """Login with Amazon refused a token request; `amazon_code` holds the OAuth error (``invalid_grant`` ...)."""

    code = "LwaError"


class ReauthorizationRequired(LwaError, Unauthorized):
    """LWA refused the seller's refresh token (``invalid_grant``): the authorisation was revoked, expired or replaced.
    Callers that stop on `Unauthorized` stop here too; `amazon_code` stays ``invalid_grant``."""

    code = "Unauthorized"


class FeedError(SpApiError):
    """A feed did not finish as DONE: `processing_status` is FATAL, CANCELLED or IN_QUEUE (stuck)."""

    code = "FeedError"

    def __init__(self, message: str, *, feed_id: str, processing_status: str, **kwargs: Any) -> None:
        self.feed_id = feed_id
        self.processing_status = processing_status
        super().__init__(message, **kwargs)
