"""The emulator's single clock: real time multiplied by `time_scale`, plus explicit advances from the control API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "iso", "parse_iso"]


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


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (Z or offset; date-only allowed). ValueError if malformed."""
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
