"""createFeed is never sent twice blindly: a lost answer leaves the submission pending, and the next run resolves it
from getFeeds (adopting only a feed of the recorded type and marketplaces) instead of sending the content again."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from tests.sync.helpers import MARKETPLACE, control, query, run, seller_dir, spapi_for, start_emulator, submit_rows

MAPPED = {"FBA-1", "FBM-1", "FBM-CEIL", "FBM-FLOOR", "SKU ü-7"}
FEED = {"feed_threshold": 0}
US, CA = MARKETPLACE["us"], "A2EUQ1WTGCTBG2"


def listings_feeds(server) -> list:
    with server.state.lock:
        return [f for f in server.state.store.feeds.values() if f.feed_type == "JSON_LISTINGS_FEED"]


def fed_skus(server, feed) -> set[str]:
    with server.state.lock:
        content = server.state.store.documents[feed.input_document_id].content
    return {message["sku"] for message in json.loads(content)["messages"]}


@pytest.mark.parametrize("status", [503, None], ids=["status503", "dropped"])
def test_a_lost_create_feed_answer_is_adopted_next_run_not_resent(tmp_path, emulator_factory, status):
    seller = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)  # max_attempts 2: a blind retry would have room to happen
    fault = {"kind": "lost_answer", "operation": "createFeed", **({"status": status} if status else {})}
    control(server, "POST", "/faults", json=fault)

    first = run(seller, "us", spapi, push=FEED)
    assert first.success
    hits = {(h["kind"], h["operation"]): h["count"] for h in control(server, "GET", "/faults")["hits"]}
    assert hits[("lost_answer", "createFeed")] == 1
    [created] = listings_feeds(server)  # Amazon has the feed; it was not sent again
    assert fed_skus(server, created) == MAPPED
    rows = submit_rows(seller, "us", first.run_id)
    assert {sku: (s, c) for sku, (s, c, _) in rows.items()} == dict.fromkeys(MAPPED, ("pending", "feed_unconfirmed"))
    assert query(seller, "us", "SELECT feed_id, status, marketplace_ids FROM submissions") == [(None, "recorded", [US])]

    second = run(seller, "us", spapi, push=FEED)
    assert second.success
    assert [f.feed_id for f in listings_feeds(server)] == [created.feed_id], "exactly one feed for the content"
    rows = submit_rows(seller, "us", second.run_id)
    assert {sku: s for sku, (s, _, _) in rows.items()} == dict.fromkeys(MAPPED, "accepted")
    assert query(seller, "us", "SELECT feed_id, status FROM submissions") == [(created.feed_id, "done")]
    history = query(
        seller,
        "us",
        "SELECT DISTINCT run_id, status FROM sync_history WHERE operation = 'submit' ORDER BY recorded_at",
    )
    assert history == [(first.run_id, "pending"), (second.run_id, "accepted")]


def test_a_feed_for_other_marketplaces_is_not_adopted(tmp_path, emulator_factory):
    """createFeed refused with a 503 (nothing created), then a feed of the same type covering the channel's
    marketplace and another one appears: it is not ours, so the submission is abandoned and its SKUs resent."""
    seller = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    control(server, "POST", "/faults", json={"kind": "status", "status": 503, "operation": "createFeed"})
    first = run(seller, "us", spapi, push=FEED)
    assert first.success
    assert {s for s, _, _ in submit_rows(seller, "us", first.run_id).values()} == {"pending"}
    assert listings_feeds(server) == []

    document = {
        "header": {"sellerId": "A3DEMOSELLER01", "version": "2.0", "issueLocale": "en_US"},
        "messages": [{"messageId": 1, "sku": "SOMEONE-ELSES", "operationType": "DELETE"}],
    }
    with dg.build_resources({"spapi": spapi}) as resources:
        client = resources.spapi.client_for("A3DEMOSELLER01", region="na")
        foreign = client.submit_feed(
            "JSON_LISTINGS_FEED", [US, CA], json.dumps(document), content_type="application/json"
        )

    second = run(seller, "us", spapi, push=FEED)
    assert second.success
    rows = submit_rows(seller, "us", second.run_id)
    assert {sku: s for sku, (s, _, _) in rows.items()} == dict.fromkeys(MAPPED, "accepted")
    ledger = query(seller, "us", "SELECT feed_id, status FROM submissions ORDER BY recorded_at, status")
    assert [status for _, status in ledger] == ["abandoned", "done"]
    assert foreign not in {feed_id for feed_id, _ in ledger}
    ours = [f for f in listings_feeds(server) if f.feed_id != foreign]
    assert [f.marketplace_ids for f in ours] == [[US]] and fed_skus(server, ours[0]) == MAPPED
