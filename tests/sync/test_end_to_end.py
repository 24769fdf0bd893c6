"""The pull and the push against the emulator over HTTP: the small seller's us channel, run through Dagster."""

from __future__ import annotations

import pytest

from assets.feed_files import publishable_updates
from pipelines.partitions import channel_for
from resources.spapi import FeedPolling
from resources.warehouse import Warehouse
from sync.push import Push, PushSettings
from tests.sync.helpers import (
    MARKETPLACE,
    control,
    listing,
    materialization,
    prepare_offline,
    query,
    run,
    seller_dir,
    spapi_for,
    start_emulator,
    submit_rows,
)

MAPPED = {"FBA-1", "FBM-1", "FBM-CEIL", "FBM-FLOOR", "SKU ü-7"}


@pytest.fixture
def seller(tmp_path):
    return seller_dir(tmp_path)


def test_fba_quantities_flow_into_the_master_and_are_never_pushed(seller, tmp_path, emulator_factory):
    (seller / "fba_inventory.csv").unlink()  # no override: Amazon's figure is the only one
    server = start_emulator(emulator_factory, seller)
    control(server, "POST", "/fba", json={"marketplaceId": MARKETPLACE["us"], "sku": "FBA-1", "quantity": 77})
    result = run(seller, "us", spapi_for(server, tmp_path))
    assert result.success
    assert query(seller, "us", "SELECT sku, fulfillable_quantity, _row FROM fba_inventory") == [("FBA-1", 77, None)]
    assert query(seller, "us", "SELECT quantity, quantity_source FROM reconciled_inventory WHERE sku = 'FBA-1'") == [
        (77, "channel")
    ]
    history = query(seller, "us", "SELECT operation, status FROM sync_history WHERE sku = 'FBA-1' ORDER BY 1")
    assert history == [("reconcile", "master_updated"), ("submit", "accepted")]  # no 90111 warning: no quantity sent
    assert query(seller, "us", "SELECT quantity FROM published_state WHERE sku = 'FBA-1'") == [(None,)]
    assert listing(server, "FBA-1")["fbaFulfillable"] == 77


def test_the_fba_file_overrides_amazon_and_offers_merge_with_the_file(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    control(server, "POST", "/fba", json={"marketplaceId": MARKETPLACE["us"], "sku": "FBA-1", "quantity": 77})
    control(
        server,
        "POST",
        "/competitors",
        json={"marketplaceId": MARKETPLACE["us"], "asin": "B000000002", "sellerId": "A9AMAZONSEEN1", "price": "13.00"},
    )
    result = run(seller, "us", spapi_for(server, tmp_path))
    assert result.success
    assert query(seller, "us", "SELECT fulfillable_quantity FROM fba_inventory WHERE sku = 'FBA-1'") == [(42,)]
    amazon = query(
        seller, "us", "SELECT asin, seller_id, price FROM competitor_prices WHERE _row IS NULL ORDER BY 1, 2"
    )
    assert ("B000000002", "A9AMAZONSEEN1", 13) in [(a, s, int(p)) for a, s, p in amazon]
    assert all(s != "A3DEMOSELLER01" for _, s, _ in amazon)  # our own offer is not a competitor
    assert materialization(result, "offer_observations")["pulled_asins"] == 5


def test_only_changed_skus_are_sent_by_patch(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    first = run(seller, "us", spapi)
    meta = materialization(first, "listings_submission")
    assert (meta["path"], meta["patches_sent"], meta["feeds_submitted"]) == ("patch", 5, 0)
    assert {sku: s for sku, (s, _, _) in submit_rows(seller, "us", first.run_id).items()} == dict.fromkeys(
        MAPPED, "accepted"
    )
    history = query(
        seller, "us", "SELECT sku, status FROM sync_history WHERE run_id = ? AND operation = 'publish'", [first.run_id]
    )
    assert sorted(history) == [("NO-ASIN", "mapping_missing"), ("UNMAPPED", "mapping_missing")]

    second = run(seller, "us", spapi)
    assert materialization(second, "listings_submission")["patches_sent"] == 0
    assert set(s for s, _, _ in submit_rows(seller, "us", second.run_id).values()) == {"unchanged"}

    master = seller / "master_inventory.csv"
    master.write_text(master.read_text().replace("FBM-1,7,15.00", "FBM-1,9,15.00"))
    third = run(seller, "us", spapi)
    rows = submit_rows(seller, "us", third.run_id)
    assert [sku for sku, (s, _, _) in rows.items() if s != "unchanged"] == ["FBM-1"]
    assert rows["FBM-1"][0] == "accepted" and listing(server, "FBM-1")["quantity"] == 9


def test_feed_path_maps_the_report_per_sku(seller, tmp_path, emulator_factory):
    master = seller / "master_inventory.csv"
    master.write_text(master.read_text().replace("Acme Cup,PRODUCT", "Acme Cup,WATCH"))  # a gated category
    server = start_emulator(emulator_factory, seller)
    # A mapping the seller adds for a SKU Amazon has no listing for: the feed PATCH answers 90700.
    mappings = seller / "channel_mappings.csv"
    mappings.write_text(mappings.read_text() + "us,UNMAPPED,B000000009,FBM,,5.00,10.00,,\n")
    result = run(seller, "us", spapi_for(server, tmp_path), push={"feed_threshold": 0})
    assert result.success
    meta = materialization(result, "listings_submission")
    assert (meta["path"], meta["feeds_submitted"], meta["patches_sent"]) == ("feed", 1, 0)
    rows = submit_rows(seller, "us", result.run_id)
    assert set(rows) == MAPPED | {"UNMAPPED"}
    assert rows["FBM-CEIL"][:2] == ("category_restricted", "category_restricted")
    assert "6039" in rows["FBM-CEIL"][2]
    assert rows["UNMAPPED"][:2] == ("error", "ResourceNotFound")
    assert {rows[s][0] for s in ("FBA-1", "FBM-1", "FBM-FLOOR", "SKU ü-7")} == {"accepted"}
    published = {r[0] for r in query(seller, "us", "SELECT sku FROM published_state")}
    assert published == {"FBA-1", "FBM-1", "FBM-FLOOR", "SKU ü-7"}
    assert query(seller, "us", "SELECT status, processing_status FROM submissions") == [("done", "DONE")]

    # The gated SKU is not resent every run: it keeps its outcome (held) until the retry interval has passed.
    spapi = spapi_for(server, tmp_path)
    held = run(seller, "us", spapi)
    again = submit_rows(seller, "us", held.run_id)
    assert (
        again["FBM-CEIL"][:2] == ("category_restricted", "restricted_held")
        and "not resent before" in again["FBM-CEIL"][2]
    )
    assert materialization(held, "listings_submission")["changed"] == 1  # UNMAPPED only
    retried = run(seller, "us", spapi, push={"restricted_retry_hours": 0})
    assert submit_rows(seller, "us", retried.run_id)["FBM-CEIL"][:2] == ("category_restricted", "category_restricted")


def test_a_silently_dropped_change_is_detected_and_resent(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    control(server, "POST", "/faults", json={"kind": "silent_drop", "operation": "patchListingsItem", "count": 1})
    first = run(seller, "us", spapi, push={"readback_sample": 100})
    rows = submit_rows(seller, "us", first.run_id)
    dropped = [sku for sku, (s, _, _) in rows.items() if s == "not_applied"]
    assert len(dropped) == 1 and "on Amazon" in rows[dropped[0]][2]
    assert query(seller, "us", "SELECT count(*) FROM published_state WHERE sku = ?", [dropped[0]]) == [(0,)]
    second = run(seller, "us", spapi, push={"readback_sample": 100})
    again = submit_rows(seller, "us", second.run_id)
    assert again[dropped[0]][0] == "accepted"
    assert sorted(s for s, _, _ in again.values()) == ["accepted"] + ["unchanged"] * 4


def test_a_spent_quota_ends_the_run_cleanly_and_the_next_run_sends_the_rest(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path, max_attempts=1)
    control(
        server,
        "POST",
        "/faults",
        json={"kind": "status", "status": 429, "operation": "patchListingsItem", "count": 100},
    )
    first = run(seller, "us", spapi)
    assert first.success
    rows = submit_rows(seller, "us", first.run_id)
    assert {(s, c) for s, c, _ in rows.values()} == {("deferred", "QuotaExceeded")}
    assert query(seller, "us", "SELECT count(*) FROM published_state") == [(0,)]
    control(server, "DELETE", "/faults")
    second = run(seller, "us", spapi_for(server, tmp_path))
    assert {s for s, _, _ in submit_rows(seller, "us", second.run_id).values()} == {"accepted"}


class Killed(Exception):
    pass


def connect(seller):
    return lambda: Warehouse(data_dir=str(seller)).connect("us")


def updates(con):
    publishable_updates(con, "us")
    return "updates"


def test_a_run_killed_after_create_feed_is_resumed_without_a_second_submission(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    prepare_offline(seller, "us", spapi)
    import dagster as dg

    channel = channel_for("us")
    settings = PushSettings(feed_threshold=0, polling=FeedPolling(initial=0.05))

    def kill(feed_id: str) -> None:
        raise Killed(feed_id)

    with dg.build_resources({"spapi": spapi}) as resources:
        client = resources.spapi.client_for(channel.seller_id, region=channel.region)
        with pytest.raises(Killed) as killed:
            Push(connect(seller), client, channel, run_id="dead-run", settings=settings, after_feed_recorded=kill).run(
                updates
            )
        feed_id = str(killed.value)
        assert query(seller, "us", "SELECT feed_id, status FROM submissions") == [(feed_id, "submitted")]
        summary = Push(connect(seller), client, channel, run_id="next-run", settings=settings).run(updates)
        assert (summary.resumed_feeds, summary.feeds_submitted) == (1, 0)
        feeds = list(client.iter_feeds(["JSON_LISTINGS_FEED"]))
        assert [f["feedId"] for f in feeds] == [feed_id]
    assert query(seller, "us", "SELECT status FROM submissions") == [("done",)]
    rows = submit_rows(seller, "us", "next-run")
    assert {sku: s for sku, (s, _, _) in rows.items()} == dict.fromkeys(MAPPED, "accepted")


def test_a_change_larger_than_one_document_goes_out_as_several_feeds(seller, tmp_path, emulator_factory):
    # The split is at 25,000 messages on Amazon; two per document here makes three documents of the five SKUs.
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    prepare_offline(seller, "us", spapi)
    import dagster as dg

    channel = channel_for("us")
    settings = PushSettings(feed_threshold=0, max_messages=2, polling=FeedPolling(initial=0.05))
    with dg.build_resources({"spapi": spapi}) as resources:
        client = resources.spapi.client_for(channel.seller_id, region=channel.region)
        summary = Push(connect(seller), client, channel, run_id="split-run", settings=settings).run(updates)
    assert summary.feeds_submitted == 3
    assert query(seller, "us", "SELECT count(*), sum(messages) FROM submissions WHERE status = 'done'") == [(3, 5)]
    rows = submit_rows(seller, "us", "split-run")
    assert {sku: s for sku, (s, _, _) in rows.items()} == dict.fromkeys(MAPPED, "accepted")


def test_a_feed_stuck_in_queue_past_its_deadline_is_cancelled_and_resent(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    control(server, "POST", "/faults", json={"kind": "feed_stuck", "operation": "createFeed", "count": 1})
    push = {"feed_threshold": 0, "poll_initial_seconds": 0.05, "poll_max_wait_seconds": 0.3}
    first = run(seller, "us", spapi, push=push)
    assert {s for s, _, _ in submit_rows(seller, "us", first.run_id).values()} == {"pending"}
    [(stuck_id, status)] = query(seller, "us", "SELECT feed_id, status FROM submissions")
    assert status == "submitted"
    second = run(seller, "us", spapi, push=push)
    rows = submit_rows(seller, "us", second.run_id)
    assert {sku: s for sku, (s, _, _) in rows.items()} == dict.fromkeys(MAPPED, "accepted")
    ledger = dict(query(seller, "us", "SELECT feed_id, status FROM submissions"))
    assert ledger.pop(stuck_id) == "cancelled" and list(ledger.values()) == ["done"]
    client = spapi.client_for(channel_for("us").seller_id, region=channel_for("us").region)
    assert client.get_feed(stuck_id)["processingStatus"] == "CANCELLED"
