"""The shared token buckets and global caps, with an injected clock (pure logic, no HTTP).

Every test takes the throttle's location from the `where` fixture: a SQLite file here (the embedded default);
tests/deploy/test_throttle_postgres.py runs the same tests again with `where` giving Postgres databases."""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable
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


# name -> the keyword arguments that place a throttle's state there (`path=` or `dsn=`); one name, one shared state.
Where = Callable[[str], dict[str, str]]


@pytest.fixture
def where(tmp_path: Path) -> Where:
    return lambda name: {"path": str(tmp_path / f"{name}.sqlite3")}


def make(where: Where, clock: FakeClock, name: str = "t", **kwargs) -> Throttle:
    kwargs.setdefault("requests_per_minute", 0)
    kwargs.setdefault("requests_per_day", 0)
    kwargs.setdefault("rate_safety", 1.0)
    kwargs.setdefault("burst_margin", 0)
    kwargs.setdefault("single_token_slack_s", 0.0)
    return Throttle(**where(name), clock=clock, sleep=clock.sleep, **kwargs)


def test_burst_then_rate(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock)
    waits = [throttle.reserve("S", "op", 2.0, 3).wait for _ in range(6)]
    # Three tokens at once, then one every 1/rate = 0.5 s, queued behind each other (reservations).
    assert waits == pytest.approx([0, 0, 0, 0.5, 1.0, 1.5])


def test_refill_is_capped_at_burst(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock)
    for _ in range(3):
        throttle.reserve("S", "op", 1.0, 3)
    clock.now += 100
    waits = [throttle.reserve("S", "op", 1.0, 3).wait for _ in range(4)]
    assert waits == pytest.approx([0, 0, 0, 1.0])


def test_buckets_are_per_seller_and_operation(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock)
    assert throttle.reserve("S1", "op", 1.0, 1).wait == 0
    assert throttle.reserve("S1", "op", 1.0, 1).wait == pytest.approx(1.0)
    assert throttle.reserve("S2", "op", 1.0, 1).wait == 0
    assert throttle.reserve("S1", "other", 1.0, 1).wait == 0


def test_safety_margins_run_below_amazons_numbers(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock, rate_safety=0.5, burst_margin=1)
    waits = [throttle.reserve("S", "op", 2.0, 3).wait for _ in range(3)]
    assert waits == pytest.approx([0, 0, 1.0])  # burst 3-1 = 2, rate 2*0.5 = 1/s


def test_a_single_token_bucket_leaves_slack_for_network_jitter(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock, rate_safety=1.0, single_token_slack_s=0.25)
    # Burst 1: no token to spare, so each interval is 1/rate plus the slack, at most a tenth of the interval.
    assert [throttle.reserve("S", "fees", 0.5, 1).wait for _ in range(3)] == pytest.approx([0, 2.2, 4.4])
    assert [throttle.reserve("S", "offers", 0.1, 1).wait for _ in range(2)] == pytest.approx([0, 10.25])
    # A bucket with a burst has its spare token (burst_margin) instead.
    assert [throttle.reserve("S", "orders", 2.0, 2).wait for _ in range(3)] == pytest.approx([0, 0, 0.5])


def test_adopts_reported_rate_and_drains_on_429(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock)
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


def test_deadline_raises_without_reserving(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock)
    throttle.reserve("S", "op", 0.1, 1)
    with pytest.raises(Throttled, match="bucket"):
        throttle.reserve("S", "op", 0.1, 1, deadline=clock.now + 5)
    assert throttle.reserve("S", "op", 0.1, 1).wait == pytest.approx(10.0)  # the failed call took nothing


def test_minute_cap_spans_operations(where: Where) -> None:
    clock = FakeClock(start=600.0)  # on a slot boundary
    throttle = make(where, clock, requests_per_minute=3)
    assert [throttle.reserve("S", f"op{i}", 100, 100).reserved for i in range(3)] == [True] * 3
    blocked = throttle.reserve("S", "op9", 100, 100)
    assert not blocked.reserved and blocked.limited_by == "minute"
    assert blocked.wait == pytest.approx(61.0)  # the first 1-s slot leaves the 60-s window after 61 s
    assert throttle.reserve("OTHER", "op9", 100, 100).reserved  # caps are per seller
    waited = throttle.acquire("S", "op9", 100, 100)
    assert waited == pytest.approx(61.0)


def test_minute_cap_is_the_sellers_across_regions(where: Where) -> None:
    clock = FakeClock(start=600.0)
    throttle = make(where, clock, requests_per_minute=3)
    # buckets are per seller × region, the module's cap is per seller: na and eu of one seller share it
    assert [throttle.reserve(f"S@{region}", "op", 100, 100).reserved for region in ("na", "eu", "fe")] == [True] * 3
    blocked = throttle.reserve("S@eu", "other", 100, 100)
    assert not blocked.reserved and blocked.limited_by == "minute"
    assert throttle.reserve("T@eu", "op", 100, 100).reserved


def test_day_cap_and_zero_disables(where: Where) -> None:
    clock = FakeClock(start=86_400.0 * 10)
    throttle = make(where, clock, requests_per_day=2)
    throttle.reserve("S", "a", 100, 100)
    throttle.reserve("S", "b", 100, 100)
    with pytest.raises(Throttled, match="day"):
        throttle.reserve("S", "c", 100, 100, deadline=clock.now + 3600)
    unlimited = Throttle(**where("u"), requests_per_minute=0, requests_per_day=0, clock=clock)
    assert all(unlimited.reserve("S", "a", 1000, 1000).wait == 0 for _ in range(50))


def test_never_exceeds_cap_in_any_window(where: Where) -> None:
    clock = FakeClock(start=12_345.678)
    throttle = make(where, clock, requests_per_minute=5, minute_seconds=6.0)
    sent = []
    for _ in range(40):
        throttle.acquire("S", "op", 1000, 1000)
        sent.append(clock.now)
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 6.0) <= 5


def _hammer(location: dict[str, str], n: int, out) -> None:  # runs in a spawned process
    throttle = Throttle(**location, requests_per_minute=0, requests_per_day=0, rate_safety=1.0, burst_margin=0)
    stamps = []
    for _ in range(n):
        throttle.acquire("S", "op", 20.0, 2)
        stamps.append(time.time())
    out.put(stamps)


def test_two_processes_share_one_bucket(where: Where) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    location = where("shared")
    Throttle(**location)  # create the schema once
    procs = [ctx.Process(target=_hammer, args=(location, 15, queue)) for _ in range(2)]
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


def _most_in_any_window(sent: list[float], period: float) -> int:
    """The largest number of send times in one sliding window [t, t + period)."""
    return max(sum(1 for t in sent if start <= t < start + period) for start in sent)


def _simulate(
    throttle: Throttle, clock: FakeClock, actors: list[tuple[str, float, int]], seconds: float
) -> list[float]:
    """Threads that each call one operation again and again, in fake time: a thread whose token was reserved in the
    future sleeps until then, sends, and asks again; one blocked by a cap asks again when told. The send times."""
    free_at = [clock.now] * len(actors)
    sent: list[float] = []
    end = clock.now + seconds
    while clock.now < end:
        for i, (operation, rate, burst) in enumerate(actors):
            if free_at[i] <= clock.now:
                reservation = throttle.reserve("S", operation, rate, burst)
                free_at[i] = clock.now + reservation.wait
                if reservation.reserved:
                    sent.append(clock.now + reservation.wait)
        clock.now += 0.25
    return sorted(sent)


def test_a_reservation_in_the_future_keeps_the_window_history_of_the_others(where: Where) -> None:
    # A 3/minute cap, one slow operation (createFeed's rate: a token every 120 s, reserved that far ahead) and a
    # fast one. Pruning the history before the slow reservation's own window let the fast one send 5 in 60 s.
    clock = FakeClock(start=600.0)
    throttle = make(where, clock, requests_per_minute=3)
    sent = _simulate(throttle, clock, [("slow", 0.0083, 1), ("fast", 100, 100)], 600)
    assert len(sent) >= 25  # the cap, not a stall, is what limits them: ~3 a minute
    assert _most_in_any_window(sent, 60.0) <= 3


def test_no_minute_or_day_window_ever_exceeds_its_cap_with_reservations_ahead(where: Where) -> None:
    clock = FakeClock(start=7_777.7)
    # Day window shrunk to 600 s (slots of 0.417 s) so both caps bind in a 30-minute run.
    throttle = make(where, clock, requests_per_minute=4, requests_per_day=25, day_seconds=600.0)
    actors = [("createFeed", 0.0083, 1), ("getOrders", 0.0167, 2), ("slow", 0.05, 1)]
    actors += [("fast", 50, 10), ("fast", 50, 10)]
    sent = _simulate(throttle, clock, actors, 1800)
    assert _most_in_any_window(sent, 60.0) <= 4
    assert _most_in_any_window(sent, 600.0) <= 25
    assert len(sent) >= 60  # three day windows' worth: the caps are used, not just respected


# -- a request's share of the caps (the budgeted offers pull leaves the rest to pushes) --------------------------------
def test_a_cap_share_bounds_the_operations_own_requests_and_the_cap_bounds_all(where: Where) -> None:
    clock = FakeClock(start=600.0)  # on a slot boundary
    throttle = make(where, clock, requests_per_minute=10)
    # Two pushes first: they do not eat the pull's share, the pull gets its 5 (its own requests only).
    assert [throttle.reserve("S", "push", 100, 100).reserved for _ in range(2)] == [True] * 2
    assert [throttle.reserve("S", "pull", 100, 100, cap_share=0.5).reserved for _ in range(5)] == [True] * 5
    blocked = throttle.reserve("S", "pull", 100, 100, cap_share=0.5)
    assert not blocked.reserved and blocked.limited_by == "minute"
    assert blocked.wait == pytest.approx(61.0)  # when the pull's first slot has left the window
    # The rest of the cap stays for the pushes: three more now, then the whole cap (10) is spent.
    assert [throttle.reserve("S", "push", 100, 100).reserved for _ in range(3)] == [True] * 3
    assert not throttle.reserve("S", "push", 100, 100).reserved
    # A full cap stops the pull too, whatever is left of its share.
    clock.now += 61.0
    throttle2 = make(where, clock, name="full", requests_per_minute=10)
    assert [throttle2.reserve("S", "push", 100, 100).reserved for _ in range(8)] == [True] * 8
    assert [throttle2.reserve("S", "pull", 100, 100, cap_share=0.5).reserved for _ in range(3)] == [True, True, False]
    # 100 × 0.29 is 28.999… in floats: still 29 requests.
    assert Throttle(**where("f"), requests_per_minute=100).windows[0].share(0.29) == 29


def test_a_cap_share_with_a_deadline_says_no_at_once_and_reserves_nothing(where: Where) -> None:
    clock = FakeClock(start=600.0)
    throttle = make(where, clock, requests_per_minute=4, requests_per_day=100)
    throttle.acquire("S", "pull", 100, 100, cap_share=0.5)
    throttle.acquire("S", "pull", 100, 100, cap_share=0.5)
    with pytest.raises(Throttled, match="minute limit at a 0.5 share"):
        throttle.acquire("S", "pull", 100, 100, deadline=clock.now + 30, cap_share=0.5)
    assert clock.now == 600.0  # it did not wait for a window that frees after the deadline
    assert throttle.reserve("S", "push", 100, 100).reserved  # nothing was taken: the pushes still have 2
    assert throttle.reserve("S", "push", 100, 100).reserved
    # Within the deadline it waits for its share to free, as any request waits for a cap.
    assert throttle.acquire("S", "pull", 100, 100, deadline=clock.now + 62, cap_share=0.5) == pytest.approx(61.0)
    # A share that leaves no request of a cap (0.2 × 4 < 1) is refused at once, deadline or not.
    with pytest.raises(Throttled, match="leaves no request"):
        throttle.reserve("S", "pull", 100, 100, cap_share=0.2)
    with pytest.raises(ValueError):
        throttle.reserve("S", "pull", 100, 100, cap_share=0.0)


def test_a_pull_at_half_the_caps_never_holds_more_and_the_pushes_get_the_rest(where: Where) -> None:
    clock = FakeClock(start=9_999.9)
    throttle = make(where, clock, requests_per_minute=10, requests_per_day=120, day_seconds=900.0)
    pull_free_at, pulls, pushes, push_waits = clock.now, [], [], []
    end = clock.now + 3600
    while clock.now < end:
        # The pull asks again as soon as it may (alone it would take the whole cap); a push comes every 20 s.
        if pull_free_at <= clock.now:
            reservation = throttle.reserve("S", "pull", 100, 100, cap_share=0.5)
            pull_free_at = clock.now + reservation.wait
            if reservation.reserved:
                pulls.append(pull_free_at)
        if round(clock.now - 9_999.9, 2) % 20 == 0:
            reservation = throttle.reserve("S", "push", 100, 100)
            push_waits.append(reservation.wait if reservation.reserved else math.inf)
            pushes.append(clock.now)
        clock.now += 0.25
    assert _most_in_any_window(pulls, 60.0) <= 5 and _most_in_any_window(pulls, 900.0) <= 60
    both = sorted(pulls + pushes)
    assert _most_in_any_window(both, 60.0) <= 10 and _most_in_any_window(both, 900.0) <= 120
    # The pull spends its whole share (5 a minute, 60 per 900 s day) beside the pushes, never a push's turn.
    assert len(pulls) >= 200
    assert set(push_waits) == {0.0}  # every push goes at once: the rest of the caps is theirs


# -- feed submissions (JSON_LISTINGS_FEED: 5 per 5 minutes per seller × region) ----------------------------------------
def _submit(throttle: Throttle, owner: str, clock: FakeClock, max_wait: float | None = None) -> float:
    with throttle.feed_submission(owner, "JSON_LISTINGS_FEED", 5, 300.0, max_wait=max_wait):
        return clock.now


def test_feed_submissions_wait_for_the_window_and_stay_per_seller_region_and_type(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock)
    start = clock.now
    sent = [_submit(throttle, "S@eu", clock) for _ in range(12)]
    assert sent[:5] == [start] * 5
    assert sent[5] == pytest.approx(start + 300.0)  # the first leaves the window 300 s after it ended
    assert _most_in_any_window(sent, 300.0) == 5
    # Another region of the same seller, another seller, another feed type: not slowed by S@eu's full window.
    assert [_submit(throttle, "S@na", clock) for _ in range(5)] == [clock.now] * 5
    assert [_submit(throttle, "T@eu", clock) for _ in range(5)] == [clock.now] * 5
    with throttle.feed_submission("S@eu", "POST_FLAT_FILE_INVLOADER_DATA", 5, 300.0) as waited:
        assert waited == 0


def test_a_feed_submission_in_flight_counts_and_keeps_the_time_its_call_ended(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock)
    for _ in range(4):
        _submit(throttle, "S@eu", clock)
    with throttle.feed_submission("S@eu", "JSON_LISTINGS_FEED", 5, 300.0):
        clock.now += 100  # a slow createFeed: Amazon may have seen it at its very end
        with pytest.raises(Throttled, match="JSON_LISTINGS_FEED"):
            _submit(throttle, "S@eu", clock, max_wait=150.0)  # nothing frees before the first four leave (300 s)
    clock.now = 1_000_000.0 + 300.0
    # The first four left; the slow one counts from when it ended (+100), not from when it was taken (+0).
    assert [_submit(throttle, "S@eu", clock) for _ in range(4)] == [clock.now] * 4
    with pytest.raises(Throttled):
        _submit(throttle, "S@eu", clock, max_wait=99.0)
    assert _submit(throttle, "S@eu", clock, max_wait=101.0) == pytest.approx(1_000_000.0 + 400.0)


def test_shrunk_feed_window_is_the_test_hook(where: Where) -> None:
    clock = FakeClock()
    throttle = make(where, clock, feed_window_seconds=2.0)
    sent = [_submit(throttle, "S@eu", clock) for _ in range(6)]
    assert sent[5] - sent[0] == pytest.approx(2.0)


def _feeds(location: dict[str, str], owner: str, n: int, out) -> None:  # runs in a spawned process
    throttle = Throttle(**location, requests_per_minute=0, requests_per_day=0, feed_window_seconds=1.0)
    stamps = []
    for _ in range(n):
        with throttle.feed_submission(owner, "JSON_LISTINGS_FEED", 5, 300.0, max_wait=30.0):
            stamps.append(time.time())
    out.put((owner, stamps))


def test_two_processes_of_one_eu_seller_share_its_feed_window(where: Where) -> None:
    # uk and de of one EU seller (two runs, two processes) take 8 submissions each; another region and another
    # seller submit alongside. The window is shrunk to 1 s: 5 per second for S@eu, whoever submits.
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    location = where("shared")
    Throttle(**location)
    jobs = [("S@eu", 8), ("S@eu", 8), ("S@na", 5), ("T@eu", 5)]
    procs = [ctx.Process(target=_feeds, args=(location, owner, n, queue)) for owner, n in jobs]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    eu = sorted(t for owner, stamps in results if owner == "S@eu" for t in stamps)
    assert len(eu) == 16 and _most_in_any_window(eu, 1.0) <= 5
    assert eu[-1] - eu[0] >= 3.0 - 0.05  # 16 submissions at 5 per second need three full windows
    for owner, stamps in results:
        if owner != "S@eu":
            assert stamps[-1] - stamps[0] < 0.5, owner  # five at once: not slowed by S@eu


# -- many processes, several sellers, one state ------------------------------------------------------------------------
RATE, BURST = 2.0, 2  # every bucket: a token every 0.5 s
CAP, CAP_SECONDS = 15, 3.0  # the module's per-seller cap, its window shrunk to 3 s
JOBS = [  # (budget owner, operation, cap share) of each process
    ("A@eu", "op", 1.0),
    ("A@eu", "op", 1.0),  # the same bucket as the first
    ("A@na", "op", 1.0),  # the same seller in another region: a bucket of its own, the seller's caps
    ("A@eu", "pull", 0.5),  # at most 7 of A's 15, in windows of its own
    ("B@eu", "op", 1.0),
    ("B@eu", "op", 1.0),
]


def _grants(location: dict[str, str], job: tuple[str, str, float], seconds: float, barrier, out) -> None:
    """Runs in a spawned process: reserve again and again for `seconds`, sleeping as `acquire` does; the time each
    granted token may be used (the decision's own clock reading + its wait)."""
    seller, operation, share = job
    last = [0.0]

    def clock() -> float:
        last[0] = time.time()
        return last[0]

    throttle = Throttle(
        **location,
        requests_per_minute=CAP,
        requests_per_day=0,
        minute_seconds=CAP_SECONDS,
        rate_safety=1.0,
        burst_margin=0,
        clock=clock,
    )
    barrier.wait(60)
    end, grants = time.time() + seconds, []
    while time.time() < end:
        reservation = throttle.reserve(seller, operation, RATE, BURST, cap_share=share)
        if reservation.reserved:
            grants.append(last[0] + reservation.wait)
        time.sleep(reservation.wait)
    out.put((job, grants))


def _bucket_ok(times: list[float]) -> bool:
    """No span [t_i, t_j] holds more grants than the bucket allows: its burst plus its refill over the span."""
    times = sorted(times)
    return all(
        j - i + 1 <= BURST + RATE * (times[j] - times[i]) + 1e-6
        for i in range(len(times))
        for j in range(i, len(times))
    )


def test_processes_of_several_sellers_never_exceed_a_bucket_or_a_cap(where: Where) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(len(JOBS))
    location = where("shared")
    Throttle(**location)  # create the schema once
    procs = [ctx.Process(target=_grants, args=(location, job, 6.0, barrier, queue)) for job in JOBS]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    by_bucket: dict[tuple[str, str], list[float]] = {}
    by_seller: dict[str, list[float]] = {}
    pulls: list[float] = []
    for (seller, operation, share), grants in results:
        by_bucket.setdefault((seller, operation), []).extend(grants)
        by_seller.setdefault(seller.split("@")[0], []).extend(grants)
        if share < 1:
            pulls.extend(grants)
    for bucket, grants in by_bucket.items():
        assert _bucket_ok(grants), bucket
    for seller, grants in by_seller.items():
        assert _most_in_any_window(grants, CAP_SECONDS) <= CAP, seller
    assert _most_in_any_window(pulls, CAP_SECONDS) <= 7
    # and the limits are used, not just respected: A's demand (three buckets, 6/s) fills its cap (5/s); B's two
    # processes share one bucket (2/s) and are not held back by A.
    assert len(by_seller["A"]) >= 1.5 * CAP
    assert len(by_seller["B"]) >= BURST + RATE * 5.0
