"""The shared token buckets and global caps, with an injected clock (pure logic, no HTTP)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from resources.spapi import Throttle, Throttled


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make(tmp_path: Path, clock: FakeClock, **kwargs) -> Throttle:
    kwargs.setdefault("requests_per_minute", 0)
    kwargs.setdefault("requests_per_day", 0)
    kwargs.setdefault("rate_safety", 1.0)
    kwargs.setdefault("burst_margin", 0)
    return Throttle(tmp_path / "t.sqlite3", clock=clock, sleep=clock.sleep, **kwargs)


def test_burst_then_rate(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = make(tmp_path, clock)
    waits = [throttle.reserve("S", "op", 2.0, 3).wait for _ in range(6)]
    # Three tokens at once, then one every 1/rate = 0.5 s, queued behind each other (reservations).
    assert waits == pytest.approx([0, 0, 0, 0.5, 1.0, 1.5])


def test_refill_is_capped_at_burst(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = make(tmp_path, clock)
    for _ in range(3):
        throttle.reserve("S", "op", 1.0, 3)
    clock.now += 100
    waits = [throttle.reserve("S", "op", 1.0, 3).wait for _ in range(4)]
    assert waits == pytest.approx([0, 0, 0, 1.0])


def test_buckets_are_per_seller_and_operation(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = make(tmp_path, clock)
    assert throttle.reserve("S1", "op", 1.0, 1).wait == 0
    assert throttle.reserve("S1", "op", 1.0, 1).wait == pytest.approx(1.0)
    assert throttle.reserve("S2", "op", 1.0, 1).wait == 0
    assert throttle.reserve("S1", "other", 1.0, 1).wait == 0


def test_safety_margins_run_below_amazons_numbers(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = make(tmp_path, clock, rate_safety=0.5, burst_margin=1)
    waits = [throttle.reserve("S", "op", 2.0, 3).wait for _ in range(3)]
    assert waits == pytest.approx([0, 0, 1.0])  # burst 3-1 = 2, rate 2*0.5 = 1/s


def test_adopts_reported_rate_and_drains_on_429(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = make(tmp_path, clock)
    throttle.reserve("S", "op", 1.0, 1)
    assert throttle.adopt_rate("S", "op", 4.0) is True
    assert throttle.adopt_rate("S", "op", 4.0) is False
    assert throttle.reserve("S", "op", 1.0, 1).wait == pytest.approx(0.25)
    clock.now += 10
    throttle.on_throttled("S", "op")
    assert throttle.reserve("S", "op", 1.0, 1).wait == pytest.approx(0.25)
    # A changed documented default (config override) resets the adopted rate.
    throttle.reserve("S", "op", 0.5, 1)
    assert throttle.snapshot("S", "op")["rate"] == 0.5


def test_deadline_raises_without_reserving(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = make(tmp_path, clock)
    throttle.reserve("S", "op", 0.1, 1)
    with pytest.raises(Throttled, match="bucket"):
        throttle.reserve("S", "op", 0.1, 1, deadline=clock.now + 5)
    assert throttle.reserve("S", "op", 0.1, 1).wait == pytest.approx(10.0)  # the failed call took nothing


def test_minute_cap_spans_operations(tmp_path: Path) -> None:
    clock = FakeClock(start=600.0)  # on a slot boundary
    throttle = make(tmp_path, clock, requests_per_minute=3)
    assert [throttle.reserve("S", f"op{i}", 100, 100).reserved for i in range(3)] == [True] * 3
    blocked = throttle.reserve("S", "op9", 100, 100)
    assert not blocked.reserved and blocked.limited_by == "minute"
    assert blocked.wait == pytest.approx(61.0)  # the first 1-s slot leaves the 60-s window after 61 s
    assert throttle.reserve("OTHER", "op9", 100, 100).reserved  # caps are per seller
    waited = throttle.acquire("S", "op9", 100, 100)
    assert waited == pytest.approx(61.0)


def test_day_cap_and_zero_disables(tmp_path: Path) -> None:
    clock = FakeClock(start=86_400.0 * 10)
    throttle = make(tmp_path, clock, requests_per_day=2)
    throttle.reserve("S", "a", 100, 100)
    throttle.reserve("S", "b", 100, 100)
    with pytest.raises(Throttled, match="day"):
        throttle.reserve("S", "c", 100, 100, deadline=clock.now + 3600)
    unlimited = Throttle(tmp_path / "u.sqlite3", requests_per_minute=0, requests_per_day=0, clock=clock)
    assert all(unlimited.reserve("S", "a", 1000, 1000).wait == 0 for _ in range(50))


def test_never_exceeds_cap_in_any_window(tmp_path: Path) -> None:
    clock = FakeClock(start=12_345.678)
    throttle = make(tmp_path, clock, requests_per_minute=5, minute_seconds=6.0)
    sent = []
    for _ in range(40):
        throttle.acquire("S", "op", 1000, 1000)
        sent.append(clock.now)
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 6.0) <= 5


def _hammer(path: str, n: int, out) -> None:  # runs in a spawned process
    throttle = Throttle(path, requests_per_minute=0, requests_per_day=0, rate_safety=1.0, burst_margin=0)
    stamps = []
    for _ in range(n):
        throttle.acquire("S", "op", 20.0, 2)
        stamps.append(time.time())
    out.put(stamps)


def test_two_processes_share_one_bucket(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    path = str(tmp_path / "shared.sqlite3")
    Throttle(path)  # create the schema once
    procs = [ctx.Process(target=_hammer, args=(path, 15, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    stamps = sorted(queue.get(timeout=60) + queue.get(timeout=60))
    for p in procs:
        p.join(timeout=30)
    # 30 calls at 20/s with burst 2 need ≥ (30 - 2) / 20 = 1.4 s in total, whichever process made them.
    assert stamps[-1] - stamps[0] >= 1.4 - 0.05
    # and no 1-second window holds more than rate + burst calls
    for start in stamps:
        assert sum(1 for t in stamps if start <= t < start + 1.0) <= 22
