"""Login with Amazon (LWA) access tokens: a machine-wide cache, single-flight refresh, and the httpx auth flow.

The cache is one JSON file (mode 0600) in the client's state directory, guarded by `fcntl.flock` on a sibling lock
file, so every thread and every process of one machine shares it. A key is the sha256 of (token URL, client id,
sha256 of the refresh token or the grantless scope); the file holds access tokens and expiry times only — never a
refresh token or a client secret. In the deployed mode (`resources.state`) there is no file: `TokenCache(None)` keeps
the tokens in this process's memory only (a token per run), shared by its threads. A refresh happens while the lock
is held, so only one thread or process talks to LWA at a time (single flight) and the others pick up its token.
Tokens are reused until shortly before `expires_in` (3600 s at Amazon).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from resources.spapi._exceptions import LwaError, ReauthorizationRequired, SpApiTimeout

__all__ = ["TokenCache", "LwaTokenProvider", "SpApiAuth", "DEFAULT_TOKEN_URL"]

log = logging.getLogger("resources.spapi.auth")

DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"

_THREAD_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(cache: str, key: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault((cache, key), threading.Lock())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Entry:
    access_token: str
    expires_at: float  # epoch seconds after which the token must not be used

    def usable(self, now: float) -> bool:
        return now < self.expires_at


class TokenCache:
    """A file of access tokens shared by every process of the machine (mode 0600, flock-guarded), or with `path`
    None this process's memory only: nothing is written anywhere."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else Path(path)
        self._memory: dict[str, _Entry] = {}
        self._memory_lock = threading.Lock()
        if self.path is not None:
            self.lock_path = self.path.with_name(self.path.name + ".lock")
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"TokenCache({str(self.path) if self.path else 'memory'!r})"

    @property
    def name(self) -> str:
        """What identifies the cache's tokens (the file, or this object for the memory of one process)."""
        return str(self.path) if self.path is not None else f"memory:{id(self)}"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the machine-wide exclusive lock (blocks until free); the memory cache's lock is the process's."""
        if self.path is None:
            with self._memory_lock:
                yield
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def read(self, key: str) -> _Entry | None:
        if self.path is None:
            return self._memory.get(key)
        raw = self._load().get(key)
        if not isinstance(raw, dict):
            return None
        try:
            return _Entry(str(raw["access_token"]), float(raw["expires_at"]))
        except (KeyError, TypeError, ValueError):
            return None

    def write(self, key: str, entry: _Entry) -> None:
        """Store one entry (call under `locked()`); expired entries are dropped; the file is replaced atomically."""
        now = time.time()
        if self.path is None:
            self._memory = {k: v for k, v in self._memory.items() if v.expires_at > now}
            self._memory[key] = entry
            return
        data = {k: v for k, v in self._load().items() if isinstance(v, dict) and v.get("expires_at", 0) > now}
        data[key] = {"access_token": entry.access_token, "expires_at": entry.expires_at}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


class LwaTokenProvider:
    """Access tokens for one (client id, refresh token) pair, or for one grantless scope.

    `token()` returns a cached token or refreshes it; `token(force=True, stale=t)` is the "Amazon said Unauthorized"
    path: it refreshes unless another thread or process already replaced `t`. `refreshes` counts the LWA calls this
    provider made.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        cache: TokenCache,
        http: httpx.Client,
        token_url: str = DEFAULT_TOKEN_URL,
        refresh_token: str | None = None,
        scope: str | None = None,
        max_attempts: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (refresh_token is None) == (scope is None):
            raise ValueError("give exactly one of refresh_token (seller-authorised) or scope (grantless)")
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._scope = scope
        self._cache = cache
        self._http = http
        self._token_url = token_url
        self._max_attempts = max(1, max_attempts)
        self._clock = clock
        subject = f"rt:{_sha256(refresh_token)}" if refresh_token is not None else f"scope:{scope}"
        self.key = _sha256(f"{token_url}\n{client_id}\n{subject}")
        self._memory: _Entry | None = None
        self._lock = _thread_lock(cache.name, self.key)
        self.refreshes = 0

    def __repr__(self) -> str:
        kind = f"scope={self._scope!r}" if self._scope else "refresh_token=<redacted>"
        return f"LwaTokenProvider(client_id={self._client_id!r}, {kind}, token_url={self._token_url!r})"

    def token(self, *, force: bool = False, stale: str | None = None) -> str:
        """A usable access token. With `force`, never return `stale` (or any token when `stale` is None)."""
        memory = self._memory
        if not force and memory is not None and memory.usable(self._clock()):
            return memory.access_token
        with self._lock, self._cache.locked():
            entry = self._cache.read(self.key)
            now = self._clock()
            fresh = entry is not None and entry.usable(now)
            if fresh and (not force or (stale is not None and entry.access_token != stale)):
                self._memory = entry
                return entry.access_token
            entry = self._refresh()
            self._cache.write(self.key, entry)
            self._memory = entry
            return entry.access_token

    def _refresh(self) -> _Entry:
        form = {"client_id": self._client_id, "client_secret": self._client_secret}
        if self._refresh_token is not None:
            form.update(grant_type="refresh_token", refresh_token=self._refresh_token)
        else:
            form.update(grant_type="client_credentials", scope=str(self._scope))
        what = f"scope {self._scope}" if self._scope else f"client {self._client_id}"
        last: Exception | None = None
        for attempt in range(self._max_attempts):
            if attempt:
                time.sleep(min(4.0, 0.25 * 2**attempt))
            started = self._clock()
            try:
                response = self._http.post(self._token_url, data=form)
            except httpx.TransportError as exc:
                last = SpApiTimeout(f"LWA token request failed ({type(exc).__name__}) for {what}", operation="lwa")
                continue
            if response.status_code in (429, 500, 502, 503, 504):
                last = LwaError(f"LWA answered HTTP {response.status_code} for {what}", status=response.status_code)
                continue
            body = _json_or_empty(response)
            if response.status_code != 200 or "access_token" not in body:
                code = body.get("error") if isinstance(body.get("error"), str) else None
                description = body.get("error_description") or "no access_token in the response"
                if code == "invalid_grant" and self._refresh_token is not None:
                    raise ReauthorizationRequired(
                        f"LWA refused the refresh token for {what} (invalid_grant: {description}): the seller's "
                        "authorization was revoked or has expired; the seller must re-authorize the app in Seller "
                        "Central (Apps and Services > Manage Your Apps) and the new refresh token be configured "
                        "(SPAPI_LWA_REFRESH_TOKEN)",
                        operation="lwa",
                        status=response.status_code,
                        amazon_code=code,
                    )
                raise LwaError(
                    f"LWA refused a token for {what}: {code or 'error'}: {description}",
                    operation="lwa",
                    status=response.status_code,
                    amazon_code=code,
                )
            expires_in = float(body.get("expires_in", 3600))
            # Refresh a little before Amazon's expiry so a token never dies in flight: 10 % of its life, ≤ 60 s.
            margin = min(60.0, expires_in * 0.1)
            self.refreshes += 1
            log.info("LWA issued a new access token for %s (expires in %.0f s)", what, expires_in)
            return _Entry(str(body["access_token"]), started + expires_in - margin)
        assert last is not None
        raise last


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def is_unauthorized(response: httpx.Response) -> bool:
    """Whether Amazon rejected the request's credentials (401, or 403 with code ``Unauthorized``)."""
    if response.status_code == 401:
        return True
    if response.status_code != 403:
        return False
    if response.headers.get("x-amzn-ErrorType", "").startswith("AccessDeniedException"):
        return True
    body = _json_or_empty(response)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    return any(isinstance(e, dict) and e.get("code") == "Unauthorized" for e in errors)


class SpApiAuth(httpx.Auth):
    """Attach the LWA token (and, when configured, a SigV4 signature); on Unauthorized refresh once and retry once.

    The request must carry the extension ``spapi_operation`` (an `Operation`); `provider_for` picks the seller's
    provider or the grantless one for that operation.
    """

    requires_response_body = True

    def __init__(self, provider_for: Callable[[Any], LwaTokenProvider], sign: Callable[[httpx.Request], None] | None):
        self._provider_for = provider_for
        self._sign = sign

    def _prepare(self, request: httpx.Request, token: str) -> None:
        request.headers["x-amz-access-token"] = token
        if self._sign is not None:
            self._sign(request)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        provider = self._provider_for(request.extensions.get("spapi_operation"))
        token = provider.token()
        self._prepare(request, token)
        response = yield request
        if is_unauthorized(response):
            log.info(
                "SP-API answered %s Unauthorized; refreshing the LWA token once and retrying", response.status_code
            )
            request.extensions["spapi_auth_retried"] = True
            token = provider.token(force=True, stale=token)
            self._prepare(request, token)
            yield request
