"""The emulator's single clock: real time multiplied by `time_scale`, plus explicit advances from the control API."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "iso", "iso_ms", "parse_iso", "parse_iso_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock:
    """Emulated epoch seconds. `now()` = start + real elapsed × time_scale + advanced seconds."""

    def __init__(
        self,
        time_scale: float = 1.0,
        start: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._monotonic = monotonic
        self._real0 = monotonic()
        self._emul0 = time.time() if start is None else start
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._emul0 + (self._monotonic() - self._real0) * self.time_scale + self._offset

    def advance(self, seconds: float) -> float:
        """Jump emulated time forward (never backward); returns the new now()."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def real_seconds(self, emulated: float) -> float:
        """How long `emulated` seconds take in real time (for sleeps)."""
        return emulated / self.time_scale

    def now_iso(self) -> str:
        return iso(self.now())


def iso(epoch: float) -> str:
    """ISO 8601 UTC with a Z, second precision: 2025-01-31T12:00:00Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(epoch: float) -> str:
    """ISO 8601 UTC with a Z, milliseconds truncated (as Amazon's notification times): 2025-01-31T12:00:00.123Z."""
    ms = math.floor(epoch * 1000)
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _parse(text: str) -> datetime:
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (Z or offset; date-only allowed). ValueError if malformed."""
    return _parse(text).timestamp()


def parse_iso_ms(text: str) -> int:
    """Whole epoch milliseconds (floored, exact) of an ISO 8601 timestamp, to compare with `iso_ms` times."""
    return (_parse(text) - _EPOCH) // timedelta(milliseconds=1)
