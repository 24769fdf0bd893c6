"""Token buckets per (selling partner, application, operation), refilled on the emulator's clock, and the module caps
per selling partner (sliding windows of requests per minute and per day over every seller-token operation).

`rate_scale` multiplies every refill rate; the burst (bucket size) stays as documented. `rate_scale=0` turns the
buckets off. Buckets start full. A request arriving up to 10 ms (emulated) before its token is due is served
and the token is borrowed from the next refill. The caps are applied as given (not scaled), 0 = off.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from emulator.clock import Clock

__all__ = ["Throttler", "Bucket", "ModuleCaps", "JITTER", "GRANTLESS"]

JITTER = 0.01  # emulated seconds
GRANTLESS = "grantless"  # the throttling key of a grantless token (no selling partner)


@dataclass
class Bucket:
    rate: float
    burst: int
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        # A request up to JITTER seconds early is served (and the debt carried), absorbing scheduling jitter
        # between a client that paces at exactly 1/rate and the moment the emulator takes the token.
        if self.tokens + self.rate * JITTER >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return True
        return False


class ModuleCaps:
    """Sliding windows of the requests admitted per selling partner: at most `per_minute` in any 60 emulated seconds
    and `per_day` in any 86,400 (0 = that cap off). Not thread-safe: the Throttler's lock guards it."""

    def __init__(self, per_minute: int = 0, per_day: int = 0) -> None:
        if per_minute < 0 or per_day < 0:
            raise ValueError("module caps must be >= 0 (0 = off)")
        self.limits = tuple((span, cap) for span, cap in ((60.0, per_minute), (86_400.0, per_day)) if cap > 0)
        self._windows: dict[str, tuple[deque[float], ...]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def full(self, seller: str, now: float) -> bool:
        """Whether one more request now would exceed a cap (expired stamps are dropped on the way)."""
        windows = self._windows.get(seller)
        if windows is None:
            return False
        for (span, cap), stamps in zip(self.limits, windows, strict=True):
            while stamps and stamps[0] <= now - span:
                stamps.popleft()
            if len(stamps) >= cap:
                return True
        return False

    def record(self, seller: str, now: float) -> None:
        windows = self._windows.get(seller)
        if windows is None:
            windows = self._windows[seller] = tuple(deque() for _ in self.limits)
        for stamps in windows:
            stamps.append(now)


class Throttler:
    """Admits or throttles each SP-API request, and counts both: requests per (seller, operation) admitted, and
    throttled requests per seller by reason ("bucket": the operation's token bucket, "cap": a module cap)."""

    def __init__(
        self, clock: Clock, rate_scale: float = 1.0, requests_per_minute: int = 0, requests_per_day: int = 0
    ) -> None:
        if rate_scale < 0:
            raise ValueError("rate_scale must be >= 0 (0 = limits off)")
        self.clock = clock
        self.rate_scale = rate_scale
        self.caps = ModuleCaps(requests_per_minute, requests_per_day)
        self._buckets: dict[tuple[str, str, str], Bucket] = {}
        self._requests: dict[str, dict[str, int]] = {}
        self._throttled: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate_scale > 0

    def admit(self, seller: str, client_id: str, operation: str, rate: float, burst: int) -> str | None:
        """None when the request may proceed (it then counts against the caps), else why it is throttled: "cap" or
        "bucket". `seller` is the token's selling partner, or GRANTLESS (not subject to the caps). A throttled request
        takes no token and counts against no cap."""
        now = self.clock.now()
        capped = self.caps.enabled and seller != GRANTLESS
        with self._lock:
            if capped and self.caps.full(seller, now):
                reason = "cap"
            elif self.enabled and not self._take((seller, client_id, operation), rate, burst, now):
                reason = "bucket"
            else:
                if capped:
                    self.caps.record(seller, now)
                counts = self._requests.setdefault(seller, {})
                counts[operation] = counts.get(operation, 0) + 1
                return None
            throttled = self._throttled.setdefault(seller, {"bucket": 0, "cap": 0})
            throttled[reason] += 1
            return reason

    def _take(self, key: tuple[str, str, str], rate: float, burst: int, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(rate * self.rate_scale, burst, float(burst), now)
        return bucket.take(now)

    def usage(self) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        """Copies of (requests per seller per operation, throttled per seller by reason)."""
        with self._lock:
            return (
                {seller: dict(counts) for seller, counts in self._requests.items()},
                {seller: dict(counts) for seller, counts in self._throttled.items()},
            )

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
