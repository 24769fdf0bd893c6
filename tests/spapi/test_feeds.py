"""The feeds workflow against the emulator: JSON report (gzip) with errors, flat-file report, FATAL, stuck."""

from __future__ import annotations

import multiprocessing
import time
from decimal import Decimal

import pytest

from feeds.reports import ReportRow
from resources.spapi import FeedError, FeedPolling, feed_finished_from_notification
from seller.config import parse_channels
from tests.spapi.conftest import DE, FAST_RETRY, SELLER, US, credentials, fault, listings

UK, FR = "A1F83G8C2ARO7P", "A13V1IB3VIYZZH"

FAST = FeedPolling(initial=0.05, factor=1.5, maximum=0.2, in_queue_deadline=1.0, max_wait=10.0)


def _patch_message(message_id: int, sku: str, patch: dict) -> dict:
    return {"messageId": message_id, "sku": sku, "operationType": "PATCH", "productType": "PRODUCT", "patches": [patch]}


def _quantity(qty: int) -> dict:
    return {
        "op": "replace",
        "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": qty}],
    }


def _price(price: Decimal) -> dict:
    offer = {"marketplace_id": US, "currency": "USD", "our_price": [{"schedule": [{"value_with_tax": price}]}]}
    return {"op": "replace", "path": "/attributes/purchasable_offer", "value": [offer]}


def test_json_listings_feed_with_errors_in_a_gzip_report(emulator, make_client) -> None:
    client = make_client(emulator)
    fbm = [r for r in listings(emulator, fulfillment="FBM")][:2]
    document = {
        "header": {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"},
        "messages": [
            _patch_message(1, fbm[0]["sku"], _quantity(7)),
            _patch_message(2, fbm[1]["sku"], _price(Decimal("0.01"))),  # below the seller's minimum
            _patch_message(3, "Größe-ü", _quantity(1)),  # unknown SKU, non-ASCII: must survive UTF-8 both ways
        ],
    }
    result = client.run_feed("JSON_LISTINGS_FEED", [US], document, polling=FAST)
    assert result.done and not result.stuck
    assert result.summary["messagesProcessed"] == 3 and result.summary["messagesAccepted"] == 1
    assert [(r.message_id, r.sku, r.severity) for r in result.errors] == [
        (2, fbm[1]["sku"], "ERROR"),
        (3, "Größe-ü", "ERROR"),
    ]
    assert all(isinstance(r, ReportRow) and r.code for r in result.rows)
    assert client.get_feed_document(result.result_document_id).get("compressionAlgorithm") == "GZIP"
    assert listings(emulator, sku=fbm[0]["sku"])[0]["quantity"] == 7
    assert result.raise_for_status() is result
    # getFeeds pages with nextToken sent alone.
    client.run_feed("JSON_LISTINGS_FEED", [US], {**document, "messages": document["messages"][:1]}, polling=FAST)
    feeds = list(client.iter_feeds(["JSON_LISTINGS_FEED"], page_size=1))
    assert len(feeds) == 2 and client.counters.by_operation["getFeeds"].calls >= 2


def test_legacy_flat_file_feed_report(emulator_factory, make_client) -> None:
    server = emulator_factory(legacy_flat_files=True)
    client = make_client(server)
    row = listings(server, fulfillment="FBM")[0]
    text = f"sku\tprice\tquantity\n{row['sku']}\t0.01\t3\nKEIN-SKU-ß\tabc\t1\n"
    result = client.run_feed("POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", [US], text, polling=FAST)
    assert result.processing_status == "DONE"
    assert result.summary == {"records_processed": 2, "records_successful": 0}
    assert [(r.message_id, r.sku, r.severity) for r in result.rows] == [
        (1, row["sku"], "ERROR"),
        (2, "KEIN-SKU-ß", "ERROR"),
    ]


def test_legacy_feed_types_end_fatal_without_legacy_mode(emulator, make_client) -> None:
    client = make_client(emulator)
    result = client.run_feed(
        "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", [US], "sku\tquantity\nA\t1\n", polling=FAST
    )
    assert result.processing_status == "FATAL" and not result.done
    with pytest.raises(FeedError) as info:
        result.raise_for_status()
    assert info.value.feed_id == result.feed_id and info.value.processing_status == "FATAL"


def test_injected_fatal_feed(emulator, make_client) -> None:
    client = make_client(emulator)
    document = {
        "header": {"sellerId": SELLER, "version": "2.0"},
        "messages": [_patch_message(1, listings(emulator)[0]["sku"], _quantity(1))],
    }
    fault(emulator, kind="feed_fatal", feedType="JSON_LISTINGS_FEED")
    result = client.run_feed("JSON_LISTINGS_FEED", [US], document, polling=FAST)
    assert result.processing_status == "FATAL"
    with pytest.raises(FeedError, match="FATAL"):
        result.raise_for_status()


def test_stuck_feed_is_reported_not_awaited(emulator, make_client) -> None:
    client = make_client(emulator)
    fault(emulator, kind="feed_stuck", feedType="JSON_LISTINGS_FEED")
    document = {
        "header": {"sellerId": SELLER, "version": "2.0"},
        "messages": [_patch_message(1, listings(emulator)[0]["sku"], _quantity(1))],
    }
    result = client.run_feed("JSON_LISTINGS_FEED", [US], document, polling=FAST)
    assert result.stuck and result.processing_status == "IN_QUEUE" and not result.rows
    assert 1.0 <= result.waited_seconds < 5.0
    with pytest.raises(FeedError, match="stuck"):
        result.raise_for_status()


def test_notification_finishes_the_wait_early(emulator, make_client) -> None:
    client = make_client(emulator)
    fault(emulator, kind="feed_stuck", feedType="JSON_LISTINGS_FEED")
    document = {
        "header": {"sellerId": SELLER, "version": "2.0"},
        "messages": [_patch_message(1, listings(emulator)[0]["sku"], _quantity(1))],
    }
    feed_id = client.submit_feed("JSON_LISTINGS_FEED", [US], document)
    message = {
        "notificationVersion": "2020-09-04",
        "notificationType": "FEED_PROCESSING_FINISHED",
        "payloadVersion": "2020-09-04",
        "payload": {
            "feedProcessingFinishedNotification": {
                "sellerId": SELLER,
                "feedId": feed_id,
                "feedType": "JSON_LISTINGS_FEED",
                "processingStatus": "CANCELLED",
            }
        },
    }
    assert feed_finished_from_notification(message, "other-feed") is None
    polls = client.counters.by_operation["getFeed"]
    result = client.finish_feed(
        feed_id,
        polling=FeedPolling(initial=5.0, in_queue_deadline=30),
        finished=lambda fid: feed_finished_from_notification(message, fid),
    )
    assert result.finished_by_notification and result.processing_status == "CANCELLED"
    assert polls.calls == 1 and result.waited_seconds < 1.0


def test_text_content_is_declared_and_encoded_as_utf8(emulator, make_client) -> None:
    client = make_client(emulator)
    sent = []
    client._documents_http.event_hooks["request"].append(sent.append)
    client.submit_feed("POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", [US], "sku\tquantity\nGrößé\t1\n")
    upload = sent[-1]
    assert upload.method == "PUT"
    assert upload.headers["content-type"] == "text/tab-separated-values; charset=UTF-8"
    assert upload.content == "sku\tquantity\nGrößé\t1\n".encode()
    with pytest.raises(ValueError, match="content_type"):
        client.submit_feed("X", [US], b"raw bytes")


def _submit_feeds(kwargs: dict, marketplace: str, n: int, out) -> None:  # runs in a spawned process
    from resources.spapi import SpApiClient, UsagePlan

    client = SpApiClient(
        **kwargs,
        # The emulator's rates are ×300 (its JSON_LISTINGS_FEED window 300 s / 300 = 1 s): createFeed's bucket too.
        usage_plans={"createFeed": UsagePlan(2.5, 15), "createFeedDocument": UsagePlan(150, 15)},
    )
    started = time.time()
    document = {
        "header": {"sellerId": kwargs["seller_id"], "version": "2.0", "issueLocale": "en_US"},
        "messages": [_patch_message(1, "NO-SUCH-SKU", _quantity(1))],
    }
    ids = [client.submit_feed("JSON_LISTINGS_FEED", [marketplace], document) for _ in range(n)]
    counters = client.counters.by_operation["createFeed"]
    out.put({"marketplace": marketplace, "ids": ids, "throttled": counters.throttled, "s": time.time() - started})
    client.close()


def test_two_runs_of_one_eu_seller_never_exceed_its_json_listings_feed_limit(emulator_factory, tmp_path) -> None:
    # uk and de of seller A (one account in region eu), each in its own process with its own ledger, submit 6
    # JSON_LISTINGS_FEEDs at once; seller B submits 5 alongside. Amazon's 5 per 5 minutes is 5 per second here.
    seller_b = "A2SECONDSELLER7"
    channels = parse_channels(
        {
            "channels": [
                {"name": "uk", "seller_id": SELLER, "marketplace_id": UK, "region": "eu"},
                {"name": "de", "seller_id": SELLER, "marketplace_id": DE, "region": "eu"},
                {"name": "fr", "seller_id": seller_b, "marketplace_id": FR, "region": "eu"},
            ]
        }
    )
    server = emulator_factory(synthetic=20, channels=channels, rate_scale=300.0)
    base = {
        **credentials(server),
        "endpoint": server.url,
        "token_url": server.token_url,
        "region": "eu",
        "state_dir": str(tmp_path / "state"),  # one machine: one shared throttle state
        "requests_per_minute": 0,
        "requests_per_day": 0,
        "feed_window_seconds": 1.0,
        "retry": FAST_RETRY,
    }
    jobs = [
        ({**base, "seller_id": SELLER}, UK, 6),
        ({**base, "seller_id": SELLER}, DE, 6),
        ({**base, "seller_id": seller_b, "refresh_token": f"Atzr|emulator-refresh-token-{seller_b}"}, FR, 5),
    ]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_submit_feeds, args=(*job, queue)) for job in jobs]
    for p in procs:
        p.start()
    results = {r["marketplace"]: r for r in (queue.get(timeout=120) for _ in procs)}
    for p in procs:
        p.join(timeout=30)
    assert [results[m]["throttled"] for m in (UK, DE, FR)] == [0, 0, 0]  # Amazon (the emulator) never said 429
    feeds = server.state.store.feeds
    created = sorted(feeds[i].created for m in (UK, DE) for i in results[m]["ids"])
    assert len(created) == 12
    assert max(sum(1 for t in created if start <= t < start + 1.0) for start in created) <= 5
    assert created[-1] - created[0] >= 2.0  # 12 at 5 per second: three windows
    assert results[FR]["s"] < 1.0  # the other seller's five went at once
