"""The transport that every SP-API request passes through: wait for a token, send, retry what is worth retrying.

It wraps the real httpx transport. Requests carrying the ``spapi_operation`` / ``spapi_seller`` extensions take a
token from the shared `Throttle` first (so a caller waits instead of being throttled), and adopt the rate Amazon
reports in ``x-amzn-RateLimit-Limit``. Two optional extensions budget one call: ``spapi_cap_share`` (every attempt's
token stays within that share of the module caps) and ``spapi_deadline`` (a time on the transport's clock: the first
attempt's token must be ours by then, else `Throttled` is raised and nothing is sent; the retries' time budget starts
when the first attempt is sent). 429, 500, 502, 503, 504 and timeouts/dropped connections are retried with
exponential backoff and full jitter, bounded by `max_attempts` and `max_total_seconds`; ``Retry-After`` sets the
minimum wait when present. createFeed (`NOT_RETRIED_AFTER_SEND`) is retried only when Amazon provably refused it (429)
or the connection never opened. When the budget is spent the last response is returned (the client turns it into a
typed error) or the last transport exception is re-raised.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from resources.spapi._throttle import Throttle
from resources.spapi.operations import Operation

__all__ = ["RetryPolicy", "Counters", "OperationCounters", "ThrottledTransport", "RETRY_STATUSES"]

log = logging.getLogger("resources.spapi.transport")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retries: attempts per call (first try included), total seconds per call, backoff base and cap."""

    max_attempts: int = 5
    max_total_seconds: float = 120.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base × 2^n)] (AWS blog "Exponential Backoff and Jitter")."""
        return rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * (2**retry_number)))


@dataclass
class OperationCounters:
    """Per-operation figures for one run: HTTP requests sent, 429s received, retries made, seconds spent waiting."""

    calls: int = 0
    throttled: int = 0
    retried: int = 0
    waited_seconds: float = 0.0
    errors: int = 0


@dataclass
class Counters:
    """Thread-safe counters per operation; `as_metadata()` gives plain values for Dagster metadata."""

    by_operation: dict[str, OperationCounters] = field(default_factory=lambda: defaultdict(OperationCounters))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, operation: str, **deltas: float) -> None:
        with self._lock:
            counters = self.by_operation[operation]
            for name, delta in deltas.items():
                setattr(counters, name, getattr(counters, name) + delta)

    def totals(self) -> OperationCounters:
        with self._lock:
            total = OperationCounters()
            for c in self.by_operation.values():
                total.calls += c.calls
                total.throttled += c.throttled
                total.retried += c.retried
                total.waited_seconds += c.waited_seconds
                total.errors += c.errors
            return total

    def as_metadata(self) -> dict[str, float | int]:
        """Flat ``spapi/<operation>/<counter>`` keys plus ``spapi/total/<counter>``; waits rounded to ms."""
        out: dict[str, float | int] = {}
        with self._lock:
            items = sorted(self.by_operation.items())
        for name, c in [*items, ("total", self.totals())]:
            out[f"spapi/{name}/calls"] = c.calls
            out[f"spapi/{name}/throttled"] = c.throttled
            out[f"spapi/{name}/retried"] = c.retried
            out[f"spapi/{name}/waited_seconds"] = round(c.waited_seconds, 3)
            out[f"spapi/{name}/errors"] = c.errors
        return out

    def reset(self) -> None:
        with self._lock:
            self.by_operation.clear()


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


# Writes that Amazon applies on every call that reaches it (createFeed: a second feed with the same content;
# confirmShipment: a second package). Once the request may have reached Amazon — any answer but a 4xx proving it was
# refused (a 429 is such a refusal and is retried), a read timeout, a dropped connection — they are never sent again:
# a 5xx does not prove that nothing was applied. The caller resolves the outcome by reading Amazon's state (sync.push
# adopts the feed from getFeeds next run; shipments read the order with getOrder).
NOT_RETRIED_AFTER_SEND = frozenset({"createFeed", "confirmShipment"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ThrottledTransport(httpx.BaseTransport):
    """Rate-limit waits and bounded retries around `inner`. See the module docstring."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        throttle: Throttle | None,
        policy: RetryPolicy,
        counters: Counters,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._throttle = throttle
        self._policy = policy
        self._counters = counters
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        op: Operation | None = request.extensions.get("spapi_operation")
        seller = request.extensions.get("spapi_seller") or "-"
        name = op.name if op is not None else str(request.extensions.get("spapi_label", "http"))
        cap_share: float = request.extensions.get("spapi_cap_share", 1.0)
        send_by: float | None = request.extensions.get("spapi_deadline")
        deadline = self._clock() + self._policy.max_total_seconds
        attempt = 0
        while True:
            attempt += 1
            if op is not None and self._throttle is not None:
                by = send_by if attempt == 1 and send_by is not None else deadline
                waited = self._throttle.acquire(seller, op.name, op.rate, op.burst, by, cap_share)
                if waited:
                    self._counters.add(name, waited_seconds=waited)
            if attempt == 1 and send_by is not None:
                deadline = self._clock() + self._policy.max_total_seconds
            self._counters.add(name, calls=1)
            try:
                response = self._inner.handle_request(request)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                delay = self._retry_delay(attempt, deadline, None)
                if name in NOT_RETRIED_AFTER_SEND and not isinstance(exc, _NOT_SENT):
                    delay = None  # the request may have reached Amazon: a retry could create a second resource
                if delay is None:
                    self._counters.add(name, errors=1)
                    raise
                log.warning("%s: %s on attempt %d; retrying in %.2f s", name, type(exc).__name__, attempt, delay)
                self._pause(name, delay)
                continue
            status = response.status_code
            if status not in RETRY_STATUSES or (status != 429 and name in NOT_RETRIED_AFTER_SEND):
                self._adopt_rate(response, seller, op)
                return response
            if status == 429:
                self._counters.add(name, throttled=1)
                if op is not None and self._throttle is not None:
                    self._throttle.on_throttled(seller, op.name)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            delay = self._retry_delay(attempt, deadline, retry_after)
            if delay is None:
                return response
            response.read()
            response.close()
            log.warning(
                "%s: HTTP %d (x-amzn-RequestId %s) on attempt %d; retrying in %.2f s",
                name,
                status,
                response.headers.get("x-amzn-RequestId", "-"),
                attempt,
                delay,
            )
            self._pause(name, delay)

    def _retry_delay(self, attempt: int, deadline: float, retry_after: float | None) -> float | None:
        """The wait before the next attempt, or None when the attempt or time budget is spent."""
        if attempt >= self._policy.max_attempts:
            return None
        delay = self._policy.backoff(attempt - 1, self._rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if self._clock() + delay > deadline:
            return None
        return delay

    def _pause(self, name: str, delay: float) -> None:
        self._counters.add(name, retried=1, waited_seconds=delay)
        if delay > 0:
            self._sleep(delay)

    def _adopt_rate(self, response: httpx.Response, seller: str, op: Operation | None) -> None:
        header = response.headers.get("x-amzn-RateLimit-Limit")
        if not header or op is None or self._throttle is None:
            return
        try:
            rate = float(header)
        except ValueError:
            return
        if self._throttle.adopt_rate(seller, op.name, rate):
            log.info("%s: Amazon reports rate %s req/s for seller %s; adopted", op.name, header, seller)

    def close(self) -> None:
        self._inner.close()
