"""Throttling and retries against the emulator: no 429 under the budget, injected faults retried then typed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from resources.spapi import (
    QuotaExceeded,
    RetryPolicy,
    ServerError,
    SpApiTimeout,
    Throttle,
    Throttled,
    UsagePlan,
)
from resources.spapi._transport import Counters, ThrottledTransport, retry_after_seconds
from resources.spapi.operations import operation
from tests.spapi.conftest import DE, US, fault, listings


def test_no_429_reaches_the_caller_under_the_budget(emulator_factory, make_client) -> None:
    # getListingsItem is 5 req/s, burst 10 at Amazon; ×4 here = 20 req/s.
    server = emulator_factory(rate_scale=4.0)
    skus = [row["sku"] for row in listings(server)[:60]]
    client = make_client(server, usage_plans={"getListingsItem": UsagePlan(rate=20.0, burst=10)})
    client.get_listings_item(skus[0], [US])  # token fetched outside the timing

    def work(part: list[str]) -> None:
        for sku in part:
            client.get_listings_item(sku, [US])

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(skus[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    counters = client.counters.by_operation["getListingsItem"]
    assert counters.throttled == 0 and counters.errors == 0
    assert counters.calls == 61
    # 61 calls with a burst of 10 need (61 - 10) / 20 s at least; the client must have waited, not fired.
    assert elapsed >= (61 - 10) / 20 - 0.2
    assert counters.waited_seconds > 1.0


def test_reported_rate_is_adopted(emulator_factory, make_client) -> None:
    server = emulator_factory(rate_scale=4.0)
    client = make_client(server)
    client.get_listings_item(listings(server)[0]["sku"], [US])
    assert client.throttle.snapshot(client.throttle_key, "getListingsItem")["rate"] == pytest.approx(20.0)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_injected_errors_are_retried(emulator, make_client, status: int) -> None:
    sku = listings(emulator)[0]["sku"]
    client = make_client(emulator)
    fault(emulator, kind="status", status=status, operation="getListingsItem", count=2)
    assert client.get_listings_item(sku, [US])["sku"] == sku
    counters = client.counters.by_operation["getListingsItem"]
    assert (counters.calls, counters.retried) == (3, 2)
    assert counters.throttled == (2 if status == 429 else 0)


def test_persistent_429_surfaces_as_quota_exceeded(emulator, make_client) -> None:
    client = make_client(emulator)
    fault(emulator, kind="status", status=429, operation="getListingsItem", count=10)
    with pytest.raises(QuotaExceeded) as info:
        client.get_listings_item(listings(emulator)[0]["sku"], [US])
    err = info.value
    assert isinstance(err, Throttled)
    assert (err.status, err.operation, err.amazon_code) == (429, "getListingsItem", "QuotaExceeded")
    assert err.request_id and "exceeded your quota" in err.message
    assert client.counters.by_operation["getListingsItem"].calls == 4  # max_attempts, never more


def test_persistent_503_surfaces_as_server_error(emulator, make_client) -> None:
    client = make_client(emulator)
    fault(emulator, kind="status", status=503, operation="*", count=10)
    with pytest.raises(ServerError) as info:
        client.get_inventory_summaries(US)
    assert info.value.status == 503 and info.value.operation == "getInventorySummaries"


def test_timeouts_and_dropped_connections_are_retried_then_typed(emulator, make_client) -> None:
    sku = listings(emulator)[0]["sku"]
    client = make_client(emulator, read_timeout=0.3)
    fault(emulator, kind="latency", latency_ms=1000, operation="getListingsItem", count=1)
    assert client.get_listings_item(sku, [US])["sku"] == sku
    fault(emulator, kind="drop", operation="getListingsItem", count=1)
    assert client.get_listings_item(sku, [US])["sku"] == sku
    assert client.counters.by_operation["getListingsItem"].retried == 2
    fault(emulator, kind="latency", latency_ms=1000, operation="getListingsItem", count=10)
    with pytest.raises(SpApiTimeout) as info:
        client.get_listings_item(sku, [US])
    assert info.value.operation == "getListingsItem"


def test_retry_budget_in_time_is_respected(emulator, make_client) -> None:
    client = make_client(
        emulator, retry=RetryPolicy(max_attempts=50, max_total_seconds=1.0, backoff_base=0.2, backoff_cap=0.4)
    )
    fault(emulator, kind="status", status=500, operation="getListingsItem", count=100)
    started = time.monotonic()
    with pytest.raises(ServerError):
        client.get_listings_item("ANY", [US])
    assert time.monotonic() - started < 1.5


def test_global_minute_cap_holds_across_operations(emulator, make_client, tmp_path: Path) -> None:
    # 4 requests per (shrunken) 2-second minute, shared by every operation of the seller.
    throttle = Throttle(tmp_path / "caps.sqlite3", requests_per_minute=4, requests_per_day=0, minute_seconds=2.0)
    client = make_client(emulator, throttle=throttle)
    sku = listings(emulator)[0]["sku"]
    client.get_listings_item(sku, [US])  # LWA token first
    stamps = []
    for i in range(8):
        if i % 2:
            client.get_listings_item(sku, [US])
        else:
            client.get_listings_restrictions("B000000000", [US])
        stamps.append(time.monotonic())
    everything = client.counters.totals()
    assert everything.throttled == 0
    for start in stamps:
        assert sum(1 for t in stamps if start <= t < start + 2.0) <= 4
    assert stamps[-1] - stamps[0] >= 2.0


def test_day_cap_spent_raises_throttled_without_sending(emulator, make_client, tmp_path: Path) -> None:
    throttle = Throttle(tmp_path / "day.sqlite3", requests_per_minute=0, requests_per_day=2)
    client = make_client(emulator, throttle=throttle)
    sku = listings(emulator)[0]["sku"]
    client.get_listings_item(sku, [US])
    client.get_listings_item(sku, [US])
    with pytest.raises(Throttled, match="day limit"):
        client.get_listings_item(sku, [US])
    assert client.counters.by_operation["getListingsItem"].calls == 2


def test_retry_after_is_honoured() -> None:
    # The emulator sends no Retry-After (Amazon documents none on 429s), so this one behaviour is driven by a mock
    # transport: the first answer asks for 0.3 s, which must outweigh a jittered backoff capped at 0.01 s.
    answers = iter([httpx.Response(503, headers={"Retry-After": "0.3"}), httpx.Response(200, json={})])
    sleeps: list[float] = []
    transport = ThrottledTransport(
        httpx.MockTransport(lambda request: next(answers)),
        throttle=None,
        policy=RetryPolicy(max_attempts=3, max_total_seconds=5, backoff_base=0.01, backoff_cap=0.01),
        counters=Counters(),
        sleep=sleeps.append,
    )
    with httpx.Client(transport=transport) as http:
        request = http.build_request("GET", "https://example.test/x", extensions={"spapi_operation": None})
        assert http.send(request).status_code == 200
    assert sleeps == [pytest.approx(0.3)]
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=0) > 0
    assert retry_after_seconds("soon", now=0) is None


def test_operation_registry_drives_bucket_defaults(emulator, make_client) -> None:
    client = make_client(emulator)
    client.get_inventory_summaries(US)
    snap = client.throttle.snapshot(client.throttle_key, "getInventorySummaries")
    assert snap["burst"] == operation("getInventorySummaries").burst == 2


def _answered(operation_id: str, answers: list[httpx.Response | Exception]) -> tuple[httpx.Response | None, int]:
    """Send one `operation_id` request through the transport over a mock answering `answers` in turn: (the answer the
    caller got, or None when an exception reached it; how many requests the mock saw)."""
    queue = list(answers)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    transport = ThrottledTransport(
        httpx.MockTransport(answer),
        throttle=None,
        policy=RetryPolicy(max_attempts=3, max_total_seconds=5, backoff_base=0.0, backoff_cap=0.0),
        counters=Counters(),
        sleep=lambda _: None,
    )
    op = operation(operation_id)
    with httpx.Client(transport=transport) as http:
        request = http.build_request(op.method, "https://example.test/feeds", extensions={"spapi_operation": op})
        try:
            return http.send(request), len(seen)
        except httpx.TransportError:
            return None, len(seen)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_feed_is_not_resent_after_a_5xx_while_a_get_is(status: int) -> None:
    # A 5xx does not prove Amazon created nothing: a second createFeed could make a second feed of the same content.
    answer, sent = _answered("createFeed", [httpx.Response(status), httpx.Response(202, json={"feedId": "1"})])
    assert (answer.status_code, sent) == (status, 1)
    answer, sent = _answered("getFeed", [httpx.Response(status), httpx.Response(200, json={})])
    assert (answer.status_code, sent) == (200, 2)


@pytest.mark.parametrize(
    ("first", "resent"),
    [
        (httpx.Response(429), True),  # Amazon refused it: nothing was created
        (httpx.ConnectError("refused"), True),  # never reached Amazon
        (httpx.ReadTimeout("no answer"), False),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), False),
    ],
    ids=["429", "connect_error", "read_timeout", "dropped"],
)
def test_create_feed_is_resent_only_when_provably_not_created(first, resent: bool) -> None:
    answer, sent = _answered("createFeed", [first, httpx.Response(202, json={"feedId": "1"})])
    assert sent == (2 if resent else 1)
    assert (answer is not None and answer.status_code == 202) == resent


def test_one_endpoint_serving_every_region_shares_the_sellers_buckets(emulator_factory, make_client) -> None:
    """Amazon's regional hosts each hold a seller's buckets (two sets for one seller id in na and eu); one endpoint
    override serving every region (the emulator here: one bucket per seller and operation) holds one set, and a client
    keyed by region there would send twice the rate. getListingsItem: 5 req/s, burst 10."""
    server = emulator_factory(rate_scale=1.0)
    na = make_client(server, region="na")
    eu = make_client(server, region="eu")
    work = [
        (na, US, [row["sku"] for row in listings(server)[:12]]),
        (eu, DE, [row["sku"] for row in listings(server, marketplaceId=DE)[:12]]),
    ]
    for client, market, skus in work:
        assert len(skus) == 12
        client.get_listings_item(skus[0], [market])  # tokens fetched outside the race
    go = threading.Barrier(2)

    def calls(client, market: str, skus: list[str]) -> None:
        go.wait()
        for sku in skus:
            client.get_listings_item(sku, [market])

    threads = [threading.Thread(target=calls, args=job) for job in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    throttled = [c.counters.by_operation["getListingsItem"].throttled for c in (na, eu)]
    assert throttled == [0, 0], throttled
    assert na.throttle_key == eu.throttle_key
    production = [make_client(server, region=r, endpoint=None) for r in ("na", "eu")]
    assert [c.throttle_key for c in production] == ["A3DEMOSELLER01@na", "A3DEMOSELLER01@eu"]
