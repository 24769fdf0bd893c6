"""The budgeted offers pull (`iter_item_offers_batches`) against the emulator and the real shared throttle, with the
module's minute window shrunk to 2 s: the pull stays within its share of the cap while push-like calls get the rest,
stops at its time limit without raising, and a second pull over the remaining ASINs goes on where it stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from resources.spapi import SpApiClient, Throttle, Throttled
from tests.spapi.conftest import US, fault, listings

MINUTE = 2.0  # seconds: the module's minute window, shrunk


class Recorder(httpx.BaseTransport):
    """The real HTTP transport, noting when each SP-API request left (monotonic clock) by operation."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.sent: dict[str, list[float]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        op = request.extensions.get("spapi_operation")
        if op is not None:
            with self._lock:
                self.sent.setdefault(op.name, []).append(time.monotonic())
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def most_in_a_window(stamps: list[float], period: float) -> int:
    # 0.1 s less than the window: a request leaves a little after the throttle's send time (thread wake-up, HTTP),
    # which can only bring an early request closer to the later ones.
    stamps = sorted(stamps)
    return max((sum(1 for t in stamps if start <= t < start + period - 0.1) for start in stamps), default=0)


@pytest.fixture
def capped(emulator, make_client, tmp_path: Path) -> Callable[..., tuple[SpApiClient, Recorder]]:
    def build(requests_per_minute: int) -> tuple[SpApiClient, Recorder]:
        caps = {"requests_per_minute": requests_per_minute, "requests_per_day": 0, "minute_seconds": MINUTE}
        throttle = Throttle(tmp_path / "caps.sqlite3", **caps)
        recorder = Recorder()
        client = make_client(emulator, throttle=throttle, transport=recorder)
        client.get_listings_item(listings(emulator)[0]["sku"], [US])  # the LWA token, and the rates, first
        time.sleep(MINUTE + 0.1)  # an empty window to start from
        recorder.sent.clear()
        return client, recorder

    return build


def asins_of(server, n: int) -> list[str]:
    rows = listings(server)
    return [rows[i % len(rows)]["asin"] for i in range(n)]


def test_the_pull_keeps_to_its_share_of_the_minute_cap_and_pushes_get_the_rest(emulator, capped) -> None:
    # 8 requests per (2-s) minute; the pull may fill half. getItemOffersBatch alone could send ~100/s here.
    client, recorder = capped(8)
    sku = listings(emulator)[0]["sku"]
    asins = asins_of(emulator, 20 * 40)
    pulled: list[str] = []
    failures: list[BaseException] = []

    def pull() -> None:
        try:
            for chunk, responses in client.iter_item_offers_batches(US, asins, max_seconds=3 * MINUTE, cap_share=0.5):
                assert [r["request"]["Asin"] for r in responses] == chunk
                pulled.extend(chunk)
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread below
            failures.append(exc)

    thread = threading.Thread(target=pull)
    thread.start()
    time.sleep(1.5 * MINUTE)  # the pull is going, its share of the window spent
    push_waits = []
    for _ in range(4):  # push-like calls: the half the pull leaves is theirs at once
        started = time.monotonic()
        client.get_listings_item(sku, [US])
        push_waits.append(time.monotonic() - started)
    thread.join()
    assert not failures, failures  # it stopped at its time limit without raising
    pulls, pushes = recorder.sent["getItemOffersBatch"], recorder.sent["getListingsItem"]
    assert most_in_a_window(pulls, MINUTE) <= 4  # floor(8 × 0.5)
    assert most_in_a_window(pulls + pushes, MINUTE) <= 8
    assert len(pulls) >= 8  # it did pull at its share (3 windows' worth, give or take a slot)
    assert len(pulled) == 20 * len(pulls) < len(asins)  # it stopped at its time limit, without raising
    assert max(push_waits) < MINUTE / 4, push_waits  # no push waited for the pull's requests to leave the window
    assert client.counters.totals().throttled == 0


def test_the_pull_stops_at_max_seconds_and_the_next_one_resumes_with_the_rest(emulator, capped) -> None:
    client, recorder = capped(6)  # share 0.5: 3 requests per 2-s window
    asins = asins_of(emulator, 20 * 6)
    started = time.monotonic()
    first = list(client.iter_item_offers_batches(US, asins, max_seconds=MINUTE / 2, cap_share=0.5))
    elapsed = time.monotonic() - started
    assert [chunk for chunk, _ in first] == [asins[0:20], asins[20:40], asins[40:60]]
    assert [r["request"]["Asin"] for _, responses in first for r in responses] == asins[:60]
    # The fourth request could only go when the window frees (~2 s): it was not waited for, nor sent.
    assert elapsed < MINUTE / 2
    assert len(recorder.sent["getItemOffersBatch"]) == 3

    done = [asin for chunk, _ in first for asin in chunk]
    rest = list(client.iter_item_offers_batches(US, asins[len(done) :], max_seconds=3 * MINUTE, cap_share=0.5))
    assert [asin for chunk, _ in rest for asin in chunk] == asins[60:]  # where the first stopped, to the end
    assert len(recorder.sent["getItemOffersBatch"]) == 6
    assert most_in_a_window(recorder.sent["getItemOffersBatch"], MINUTE) <= 3


def test_a_429_after_the_throttle_said_yes_is_retried_and_no_limits_means_every_asin(emulator, make_client) -> None:
    client = make_client(emulator)
    asins = asins_of(emulator, 45)
    fault(emulator, kind="status", status=429, operation="getItemOffersBatch", count=1)
    batches = list(client.iter_item_offers_batches(US, asins, max_seconds=30.0, cap_share=0.5))
    assert [chunk for chunk, _ in batches] == [asins[0:20], asins[20:40], asins[40:45]]
    counters = client.counters.by_operation["getItemOffersBatch"]
    assert (counters.calls, counters.throttled, counters.retried) == (4, 1, 1)
    # The one-way wrapper: no limits, every ASIN, a refused token raises as for any call.
    assert [r["request"]["Asin"] for r in client.get_item_offers_batch(US, asins)] == asins


def test_without_limits_a_spent_day_cap_raises_but_a_budgeted_pull_just_stops(emulator, make_client, tmp_path) -> None:
    throttle = Throttle(tmp_path / "day.sqlite3", requests_per_minute=0, requests_per_day=4)
    client = make_client(emulator, throttle=throttle)
    asins = asins_of(emulator, 100)
    # Half of a 4-a-day cap: two requests, then the pull stops quietly (the rest of the day is the pushes').
    assert len(list(client.iter_item_offers_batches(US, asins, cap_share=0.5))) == 2
    with pytest.raises(Throttled, match="day limit"):
        client.get_item_offers_batch(US, asins)
