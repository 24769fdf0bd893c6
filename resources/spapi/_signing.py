"""Optional AWS Signature Version 4 for SP-API requests (botocore's `SigV4Auth`, service ``execute-api``).

Amazon stopped requiring SigV4 on 2023-10-02 and still accepts signed requests, so signing is on only when AWS
credentials are configured. The signing region is the endpoint's AWS region (NA us-east-1, EU eu-west-1,
FE us-west-2). Only end-to-end headers are signed (host, x-amz-date, x-amz-access-token, content-type and the
session token), so connection-level headers that a proxy may rewrite cannot break the signature.
"""

from __future__ import annotations

import logging

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

__all__ = ["SigV4Signer", "AWS_REGIONS", "SIGNED_HEADERS"]

AWS_REGIONS = {"na": "us-east-1", "eu": "eu-west-1", "fe": "us-west-2"}

SIGNED_HEADERS = ("host", "x-amz-access-token", "content-type", "x-amz-security-token")


class _NoCanonicalRequest(logging.Filter):
    """botocore logs the canonical request at DEBUG, and ours contains the x-amz-access-token header: drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("CanonicalRequest")


_BOTOCORE_AUTH_LOG = logging.getLogger("botocore.auth")
if not any(isinstance(f, _NoCanonicalRequest) for f in _BOTOCORE_AUTH_LOG.filters):
    _BOTOCORE_AUTH_LOG.addFilter(_NoCanonicalRequest())


class SigV4Signer:
    """Signs an `httpx.Request` in place (sets ``X-Amz-Date`` and ``Authorization``)."""

    def __init__(
        self, access_key_id: str, secret_access_key: str, aws_region: str, session_token: str | None = None
    ) -> None:
        self._credentials = Credentials(access_key_id, secret_access_key, session_token)
        self.aws_region = aws_region
        self.access_key_id = access_key_id

    def __repr__(self) -> str:
        return f"SigV4Signer(access_key_id={self.access_key_id!r}, aws_region={self.aws_region!r})"

    def __call__(self, request: httpx.Request) -> None:
        headers = {k: v for k, v in request.headers.items() if k.lower() in SIGNED_HEADERS}
        headers.setdefault("host", request.url.netloc.decode("ascii"))
        for stale in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            request.headers.pop(stale, None)
        aws_request = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        SigV4Auth(self._credentials, "execute-api", self.aws_region).add_auth(aws_request)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            value = aws_request.headers.get(name)
            if value is not None:
                request.headers[name] = value
