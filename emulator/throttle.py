"""Token buckets per (selling partner, application, operation), refilled on the emulator's clock.

`rate_scale` multiplies every refill rate; the burst (bucket size) stays as documented. `rate_scale=0` turns limits
off. Buckets start full. A request arriving up to 10 ms (emulated) before its token is due is served
and the token is borrowed from the next refill.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from emulator.clock import Clock

__all__ = ["Throttler", "Bucket", "JITTER"]

JITTER = 0.01  # emulated seconds


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


class Throttler:
    def __init__(self, clock: Clock, rate_scale: float = 1.0) -> None:
        if rate_scale < 0:
            raise ValueError("rate_scale must be >= 0 (0 = limits off)")
        self.clock = clock
        self.rate_scale = rate_scale
        self._buckets: dict[tuple[str, str, str], Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate_scale > 0

    def allow(self, key: tuple[str, str, str], rate: float, burst: int) -> bool:
        """Take one token from the bucket for `key`; False means throttle (429)."""
        if not self.enabled:
            return True
        now = self.clock.now()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = Bucket(rate * self.rate_scale, burst, float(burst), now)
            return bucket.take(now)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
