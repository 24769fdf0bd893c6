"""Login with Amazon (LWA) as the emulator plays it, plus optional SigV4 verification.

Credentials come from `SPAPI_LWA_CLIENT_ID`, `SPAPI_LWA_CLIENT_SECRET`, `SPAPI_LWA_REFRESH_TOKEN` when set, else the
documented defaults below. Access tokens live 3,600 emulated seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from emulator.clock import Clock
from emulator.exceptions import LwaError, Unauthorized

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REFRESH_TOKEN",
    "TOKEN_LIFETIME",
    "AccessToken",
    "LwaCredentials",
    "TokenStore",
    "verify_sigv4",
]

DEFAULT_CLIENT_ID = "amzn1.application-oa2-client.emulator"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
DEFAULT_REFRESH_TOKEN = "Atzr|emulator-refresh-token"
DEFAULT_AWS_ACCESS_KEY_ID = "AKIAEMULATOREXAMPLE"
DEFAULT_AWS_SECRET_ACCESS_KEY = "emulator-aws-secret-access-key"
TOKEN_LIFETIME = 3600
KNOWN_SCOPES = {"sellingpartnerapi::notifications", "sellingpartnerapi::migration"}


@dataclass(frozen=True)
class LwaCredentials:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    refresh_token: str = DEFAULT_REFRESH_TOKEN

    @classmethod
    def from_env(cls) -> LwaCredentials:
        return cls(
            client_id=os.environ.get("SPAPI_LWA_CLIENT_ID") or DEFAULT_CLIENT_ID,
            client_secret=os.environ.get("SPAPI_LWA_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET,
            refresh_token=os.environ.get("SPAPI_LWA_REFRESH_TOKEN") or DEFAULT_REFRESH_TOKEN,
        )


@dataclass
class AccessToken:
    token: str
    kind: str  # "seller" | "grantless"
    client_id: str
    seller_id: str | None
    scopes: tuple[str, ...]
    expires_at: float
    refresh_token: str | None = None


@dataclass
class TokenStore:
    """Refresh tokens (seller authorisations), issued access tokens and revocations. Picklable."""

    credentials: LwaCredentials
    seller_id: str
    access: dict[str, AccessToken] = field(default_factory=dict)
    revoked_refresh: set[str] = field(default_factory=set)
    sellers: tuple[str, ...] = ()  # every seller of the channels config (state saved before it had this: first only)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def seller_for(self, refresh: str) -> str | None:
        """The seller a refresh token authorizes: the configured token is the first seller's; every seller of the
        channels config also has its own, `<refresh token>-<seller id>` (one authorization per seller, as on
        Amazon)."""
        if refresh == self.credentials.refresh_token:
            return self.seller_id
        prefix = self.credentials.refresh_token + "-"
        seller = refresh[len(prefix) :] if refresh.startswith(prefix) else None
        return seller if seller in (getattr(self, "sellers", ()) or (self.seller_id,)) else None

    # --- the token endpoint -------------------------------------------------------------------------------------
    def grant(self, body: bytes, content_type: str, clock: Clock) -> dict:
        """Handle POST /auth/o2/token (form or JSON body); returns the token response or raises LwaError."""
        fields = _parse_token_body(body, content_type)
        grant_type = fields.get("grant_type")
        if not grant_type:
            raise LwaError("invalid_request", "The request is missing a required parameter : grant_type")
        if fields.get("client_id") != self.credentials.client_id or (
            fields.get("client_secret") != self.credentials.client_secret
        ):
            raise LwaError("invalid_client", "Client authentication failed", 401)
        now = clock.now()
        if grant_type == "refresh_token":
            refresh = fields.get("refresh_token")
            if not refresh:
                raise LwaError("invalid_request", "The request is missing a required parameter : refresh_token")
            seller = self.seller_for(refresh)
            if seller is None or refresh in self.revoked_refresh:
                raise LwaError("invalid_grant", "The request has an invalid grant parameter : refresh_token")
            token = self._issue("seller", seller, (), now, refresh)
            return {
                "access_token": token.token,
                "refresh_token": refresh,
                "token_type": "bearer",
                "expires_in": TOKEN_LIFETIME,
            }
        if grant_type == "client_credentials":
            scopes = tuple((fields.get("scope") or "").split())
            if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
                raise LwaError("invalid_scope", "The request has an invalid parameter : scope")
            token = self._issue("grantless", None, scopes, now, None)
            return {
                "access_token": token.token,
                "scope": " ".join(scopes),
                "token_type": "bearer",
                "expires_in": TOKEN_LIFETIME,
            }
        raise LwaError("unsupported_grant_type", f"Unsupported grant type: {grant_type}")

    def _issue(
        self, kind: str, seller: str | None, scopes: tuple[str, ...], now: float, refresh: str | None
    ) -> AccessToken:
        token = AccessToken(
            token="Atza|" + secrets.token_urlsafe(48),
            kind=kind,
            client_id=self.credentials.client_id,
            seller_id=seller,
            scopes=scopes,
            expires_at=now + TOKEN_LIFETIME,
            refresh_token=refresh,
        )
        with self._lock:
            # drop expired tokens now and then so a long demo does not grow without bound
            if len(self.access) > 10_000:
                self.access = {k: v for k, v in self.access.items() if v.expires_at > now}
            self.access[token.token] = token
        return token

    # --- checks on SP-API calls ---------------------------------------------------------------------------------
    def authenticate(self, header: str | None, needed: str, now: float) -> AccessToken:
        """The token of an SP-API call, or Unauthorized (403) when missing, unknown, expired or the wrong kind."""
        if not header:
            raise Unauthorized()
        token = self.access.get(header.strip())
        if token is None or token.expires_at <= now:
            raise Unauthorized()
        if token.kind == "seller" and token.refresh_token in self.revoked_refresh:
            raise Unauthorized()
        if token.kind != needed:
            raise Unauthorized()
        return token

    def revoke(self, refresh_token: str | None = None, access_tokens: bool = True) -> int:
        """Revoke a refresh token (its access tokens die with it) and/or every issued access token."""
        with self._lock:
            count = 0
            if refresh_token:
                self.revoked_refresh.add(refresh_token)
                count += 1
            if access_tokens:
                count += len(self.access)
                self.access.clear()
            return count

    def expire(self, now: float) -> int:
        """Every access token still valid expires now (as if their hour ran out); returns how many did."""
        with self._lock:
            live = [t for t in self.access.values() if t.expires_at > now]
            for token in live:
                token.expires_at = now
            return len(live)

    def restore(self, refresh_token: str | None = None) -> None:
        with self._lock:
            if refresh_token:
                self.revoked_refresh.discard(refresh_token)
            else:
                self.revoked_refresh.clear()


def _parse_token_body(body: bytes, content_type: str) -> dict[str, str]:
    text = body.decode("utf-8", "replace")
    if "json" in (content_type or "").lower():
        try:
            doc = json.loads(text or "{}")
        except json.JSONDecodeError:
            raise LwaError("invalid_request", "The request body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise LwaError("invalid_request", "The request body must be a JSON object")
        return {k: str(v) for k, v in doc.items()}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def verify_sigv4(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    access_key: str = DEFAULT_AWS_ACCESS_KEY_ID,
    secret_key: str = DEFAULT_AWS_SECRET_ACCESS_KEY,
) -> str | None:
    """None when the request carries a valid AWS SigV4 signature (service execute-api), else the reason it does not.

    Recomputes the signature with botocore over exactly the signed headers, at the request's own X-Amz-Date.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {k.lower(): v for k, v in headers.items()}
    authz = lower.get("authorization", "")
    if not authz.startswith("AWS4-HMAC-SHA256 "):
        return "missing AWS4-HMAC-SHA256 Authorization header"
    parts = dict(p.strip().split("=", 1) for p in authz[len("AWS4-HMAC-SHA256 ") :].split(",") if "=" in p)
    try:
        credential = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
        key_id, date, region, service, terminator = credential
    except (KeyError, ValueError):
        return "malformed Authorization header"
    if key_id != access_key:
        return "unknown access key"
    if service != "execute-api" or terminator != "aws4_request":
        return "credential scope must be <date>/<region>/execute-api/aws4_request"
    amz_date = lower.get("x-amz-date")
    if not amz_date or not amz_date.startswith(date):
        return "missing or inconsistent X-Amz-Date"
    request = AWSRequest(method=method, url=url, data=body, headers={h: lower.get(h, "") for h in signed})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret_key, lower.get("x-amz-security-token")), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not secrets.compare_digest(expected, signature):
        return "signature does not match"
    return None
