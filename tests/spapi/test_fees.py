"""getMyFeesEstimates through the client against the emulator over HTTP: 20 SKUs per request, Amazon's rate (0.5
requests/s, burst 1) kept without a single 429, a failed item failing alone, and a 429 retried."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal

from reliability.wiretap import Wiretap
from resources.spapi import FeeQuery
from sync.fees import estimate_rows
from tests.spapi.conftest import US, control, fault, listings


def queries(server, n: int) -> list[FeeQuery]:
    rows = [r for r in listings(server) if r["price"]]
    return [FeeQuery(r["sku"], Decimal("20.00"), r["fulfillment"] == "FBA") for r in rows[:n]]


def test_twenty_skus_per_request_each_answered_by_its_identifier(emulator, make_client) -> None:
    client = make_client(emulator)
    tap = Wiretap(emulator)
    asked = queries(emulator, 45)
    batches = list(client.iter_fees_estimates(US, "USD", asked))
    assert [len(chunk) for chunk, _ in batches] == [20, 20, 5]
    sent = [json.loads(e.body) for e in tap.calls("getMyFeesEstimates")]
    assert [[item["IdValue"] for item in body] for body in sent] == [
        [q.sku for q in asked[0:20]],
        [q.sku for q in asked[20:40]],
        [q.sku for q in asked[40:45]],
    ]
    first = sent[0][0]
    assert first["IdType"] == "SellerSKU"
    assert first["FeesEstimateRequest"]["PriceToEstimateFees"] == {
        "ListingPrice": {"CurrencyCode": "USD", "Amount": 20.00}
    }
    assert b'"Amount":20.00' in tap.calls("getMyFeesEstimates")[0].body  # the Decimal's digits, never a float
    for chunk, results in batches:
        assert [r["FeesEstimateIdentifier"]["SellerInputIdentifier"] for r in results] == [q.sku for q in chunk]
        assert {r["Status"] for r in results} == {"Success"}


def test_the_documented_rate_is_kept_without_a_429(emulator_factory, make_client) -> None:
    server = emulator_factory(rate_scale=1.0)  # Amazon's own rate: 0.5 requests/s, burst 1
    client = make_client(server)
    tap = Wiretap(server)
    started = time.monotonic()
    results = [r for _, chunk in client.iter_fees_estimates(US, "USD", queries(server, 60)) for r in chunk]
    elapsed = time.monotonic() - started
    assert len(results) == 60 and {r["Status"] for r in results} == {"Success"}
    calls = tap.calls("getMyFeesEstimates")
    assert [e.status for e in calls] == [200, 200, 200]  # no 429: the client waited for its token each time
    gaps = [b.at - a.at for a, b in zip(calls, calls[1:], strict=False)]
    assert min(gaps) > 1.8 and elapsed < 10, gaps  # one request per 2 s
    throttled = control(server, "GET", "/market")["throttled"]
    assert all(counts["bucket"] == 0 for counts in throttled.values()), throttled


def test_a_failed_item_fails_alone(emulator, make_client) -> None:
    client = make_client(emulator)
    asked = queries(emulator, 3)
    asked.insert(1, FeeQuery("NOT-MY-SKU", Decimal("9.99"), False))
    ((chunk, results),) = client.iter_fees_estimates(US, "USD", asked)
    assert [r["Status"] for r in results] == ["Success", "ClientError", "Success", "Success"]
    rows = estimate_rows(chunk, results, "USD", 2, datetime.now(UTC)).to_pylist()
    assert [r["sku"] for r in rows] == [q.sku for q in asked]
    bad = rows[1]
    assert bad["estimated_at"] is None and bad["referral_rate"] is None
    assert bad["error"].startswith("InvalidParameterValue: The seller SKU NOT-MY-SKU is not listed")
    assert all(r["estimated_at"] is not None and r["error"] is None for i, r in enumerate(rows) if i != 1)


def test_a_429_is_retried(emulator, make_client) -> None:
    client = make_client(emulator)
    fault(emulator, kind="status", operation="getMyFeesEstimates", status=429, count=2)
    ((_, results),) = client.iter_fees_estimates(US, "USD", queries(emulator, 5))
    assert {r["Status"] for r in results} == {"Success"} and len(results) == 5
    counters = client.counters.by_operation["getMyFeesEstimates"]
    assert (counters.throttled, counters.retried, counters.calls) == (2, 2, 3)
