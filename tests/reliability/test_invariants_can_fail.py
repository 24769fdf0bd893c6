"""The invariants themselves: each one raises when its rule is broken, on every path a violation can take (a check
that cannot fail is a defect). Violations are planted through the real parts: requests to the emulator over HTTP
with the project's client, Dagster runs of the real assets, the real notification store."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import httpx
import pytest

from assets.orders import reservations
from emulator.testing import lwa_token
from pipelines.partitions import CHANNELS, channel_partitions
from reliability import invariants as inv
from reliability.wiretap import Wiretap
from resources.warehouse import Warehouse
from sync.notifications import Received, prepare_batch, store_batch
from tests.notifications.helpers import order_change
from tests.reliability.harness import RUN_ENV, Scenario
from tests.sync.helpers import MARKETPLACE, run, seller_dir, spapi_for, start_emulator

SELLER = "A3DEMOSELLER01"
US = MARKETPLACE["us"]
HEADER = {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"}  # no marketplace: as the pipeline writes it


@pytest.fixture
def tapped(tmp_path, emulator_factory):
    data = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, data)
    return data, server, Wiretap(server)


@pytest.fixture
def validated(tapped):
    """The channel's validated input tables as the pipeline's input assets leave them (the bounds of invariant 2)."""
    data, server, tap = tapped
    (data / "warehouse").mkdir(exist_ok=True)
    con = duckdb.connect(str(data / "warehouse" / "us.duckdb"))
    con.execute(
        "CREATE TABLE channel_mappings AS SELECT * FROM read_csv(?, all_varchar = true)",
        [str(data / "channel_mappings.csv")],
    )
    con.execute(
        "CREATE TABLE master_inventory AS SELECT sku, quantity::BIGINT AS quantity FROM read_csv(?)",
        [str(data / "master_inventory.csv")],
    )
    con.close()
    return data, server, tap


@pytest.fixture
def client(tapped, tmp_path):
    _, server, _ = tapped
    with dg.build_resources({"spapi": spapi_for(server, tmp_path)}) as resources:
        yield resources.spapi.client_for(SELLER, region="na")


def offer(price: str, marketplace: str = US) -> dict:
    money = [{"schedule": [{"value_with_tax": json.loads(price)}]}]
    value = {"marketplace_id": marketplace, "currency": "USD", "our_price": money}
    return {"op": "replace", "path": "/attributes/purchasable_offer", "value": [value]}


def quantity(units: int) -> dict:
    value = [{"fulfillment_channel_code": "DEFAULT", "quantity": units}]
    return {"op": "replace", "path": "/attributes/fulfillment_availability", "value": value}


def feed_document(messages: list[tuple[str, list[dict]]], first_id: int = 1) -> bytes:
    body = [
        {"messageId": n, "sku": sku, "operationType": "PATCH", "productType": "PRODUCT", "patches": patches}
        for n, (sku, patches) in enumerate(messages, start=first_id)
    ]
    return json.dumps({"header": HEADER, "messages": body}).encode()


def patch(server, sku: str, patches: list[dict], marketplace: str = US) -> None:
    httpx.patch(
        f"{server.url}/listings/2021-08-01/items/{SELLER}/{sku}",
        params={"marketplaceIds": marketplace},
        json={"productType": "PRODUCT", "patches": patches},
        headers={"x-amz-access-token": lwa_token(server)},
        timeout=10,
    )


# -- 2: bounds, on the patch path and the feed path ----------------------------------------------------------------
def test_a_price_below_the_floor_and_an_fba_quantity_are_caught(validated):
    data, server, tap = validated
    patch(server, "FBM-1", [offer("9")])
    patch(server, "FBA-1", [quantity(3)])
    with pytest.raises(AssertionError, match=r"FBM-1: price 9 outside \[10.00, 25.00\].*FBA-1: quantity 3 sent"):
        inv.within_bounds(data, "us", tap, US)


def test_a_feed_with_a_price_below_the_floor_and_a_quantity_above_the_stock_is_caught(validated, client):
    data, server, tap = validated
    # The document's header names no marketplace (the pipeline's never do): only its createFeed does.
    document = feed_document([("FBM-1", [offer("1"), quantity(999)]), ("FBM-CEIL", [offer("12.00")])])
    client.submit_feed("JSON_LISTINGS_FEED", [US], document, content_type="application/json")
    with pytest.raises(AssertionError, match=r"FBM-1: price 1 outside \[10.00, 25.00\]") as caught:
        inv.within_bounds(data, "us", tap, US)
    assert "FBM-1: quantity 999 > master 7 - reserved 0" in str(caught.value)
    assert "FBM-CEIL" not in str(caught.value)
    # Another marketplace's check does not read the us feed's offers.
    assert inv.within_bounds(data, "us", tap, MARKETPLACE["uk"]) == 0


def test_a_patch_is_read_by_the_marketplace_in_its_offer_and_its_query(validated):
    data, server, tap = validated
    patch(server, "FBM-1", [offer("1"), quantity(999)])
    with pytest.raises(AssertionError, match=r"FBM-1: price 1 outside.*FBM-1: quantity 999 > master 7"):
        inv.within_bounds(data, "us", tap, US)
    since = len(tap.exchanges)
    # An offer for us inside a request for uk: the price is us's to check; the quantity (no marketplace in the
    # value) follows the query, uk.
    patch(server, "FBM-FLOOR", [offer("1", US), quantity(999)], marketplace=MARKETPLACE["uk"])
    with pytest.raises(AssertionError, match=r"FBM-FLOOR: price 1 outside \[28.00, 40.00\]") as caught:
        inv.within_bounds(data, "us", tap, US, since)
    assert "quantity" not in str(caught.value)
    with pytest.raises(AssertionError, match=f"a purchasable_offer for {US} in a request for {MARKETPLACE['uk']}"):
        inv.within_bounds(data, "uk", tap, MARKETPLACE["uk"], since)


def test_nothing_checked_while_a_feed_reached_amazon_fails(validated, client):
    data, server, tap = validated
    flat = b"sku\tprice\tquantity\nFBM-1\t1.00\t999\n"  # a document no offer can be read from
    client.submit_feed(
        "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", [US], flat, content_type="text/tab-separated-values"
    )
    with pytest.raises(AssertionError, match=r"no offer could be read.*0 offers checked though 1 listing"):
        inv.within_bounds(data, "us", tap, US)


def test_a_document_no_createfeed_named_is_not_an_offer(validated, client):
    data, server, tap = validated
    document = feed_document([("FBM-1", [offer("1")])])
    target = client.create_feed_document("application/json")
    client.upload_document(target["url"], document, "application/json")
    sent = inv.reached_amazon(tap, US)
    assert (sent.offers, sent.requests, sent.unreferenced_documents) == ([], 0, 1)
    assert inv.within_bounds(data, "us", tap, US) == 0


def store_orders(data, documents: list[dict]) -> None:
    """The seller's notification store with these ORDER_CHANGE documents, as the sensor stores them."""
    messages = [Received(f"m{n}", f"h{n}", json.dumps(d)) for n, d in enumerate(documents)]
    batch = prepare_batch(messages, CHANNELS, datetime.now(UTC))
    assert not batch.rows["dead_letters"], batch.rows["dead_letters"]
    with Warehouse(data_dir=str(data)).connect_notifications() as con:
        store_batch(con, batch)


def open_order_on_uk(data) -> None:
    """FBM-1 × 2 ordered on uk, notified Pending then Unshipped (both list the item), after the master was written."""
    written = time.time() - 7200
    os.utime(data / "master_inventory.csv", (written, written))
    placed = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    later = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    common = {"market": MARKETPLACE["uk"], "purchase_date": placed}
    store_orders(
        data,
        [
            order_change("202-0000001-0000001", "Pending", placed, [("FBM-1", 2)], notification_id="n1", **common),
            order_change("202-0000001-0000001", "Unshipped", later, [("FBM-1", 2)], notification_id="n2", **common),
        ],
    )


def test_the_bound_subtracts_the_orders_of_every_channel_of_the_seller(validated):
    data, server, tap = validated
    patch(server, "FBM-1", [offer("15.00"), quantity(7)])  # before the order reached us: the whole stock is right
    time.sleep(0.01)
    open_order_on_uk(data)
    assert inv.within_bounds(data, "us", tap, US) == 1
    mark = len(tap.exchanges)
    assert inv.seller_reservations(data, "us") == {"FBM-1": {"202-0000001-0000001": 2}}
    patch(server, "FBM-1", [offer("15.00"), quantity(5)])
    assert inv.within_bounds(data, "us", tap, US, mark) == 1
    since = len(tap.exchanges)
    # The whole master stock, as a run that never read the reservations would publish.
    patch(server, "FBM-1", [offer("15.00"), quantity(7)])
    with pytest.raises(AssertionError, match=r"FBM-1: quantity 7 > master 7 - reserved 2"):
        inv.within_bounds(data, "us", tap, US, since)


# -- 1: one final status per SKU the seller's files map -------------------------------------------------------------
@pytest.mark.parametrize("path", ["patch", "feed"])
def test_a_sku_dropped_before_pricing_is_caught(tapped, tmp_path, monkeypatch, path):
    data, server, tap = tapped
    push = {"feed_threshold": 0} if path == "feed" else {"feed_threshold": 10_000}
    import assets.inventory

    real = assets.inventory.reconcile
    monkeypatch.setattr(assets.inventory, "reconcile", lambda *a, **k: real(*a, **k).filter("sku <> 'FBM-1'"))
    with (data / "channel_mappings.csv").open("a", encoding="utf-8") as handle:
        handle.write("us,GHOST,B000000009,FBM,,5.00,10.00,,\n")  # mapped, not in the master
    result = run(data, "us", spapi_for(server, tmp_path), push=push)
    assert tap.calls("createFeed" if path == "feed" else "patchListingsItem"), f"the run did not take the {path} path"
    assert "FBM-1" not in inv.expected_offers(data, "us"), "the plant did not drop the SKU"
    with pytest.raises(AssertionError, match=r"no submit row for mapped SKU\(s\) \['FBM-1'\]"):
        inv.one_final_status(data, "us", result.run_id)
    monkeypatch.setattr(assets.inventory, "reconcile", real)
    again = run(data, "us", spapi_for(server, tmp_path), push=push)
    assert "FBM-1" in inv.one_final_status(data, "us", again.run_id)
    with duckdb.connect(str(data / "warehouse" / "us.duckdb")) as con:
        con.execute("DELETE FROM sync_history WHERE sku = 'GHOST' AND status = 'master_missing'")
    with pytest.raises(AssertionError, match=r"no publish/master_missing row for \['GHOST'\]"):
        inv.one_final_status(data, "us", again.run_id)


def test_the_skus_come_from_the_files_whatever_their_bytes(tmp_path):
    data = seller_dir(tmp_path)
    blob = (data / "channel_mappings.csv").read_bytes().replace(b"\n", b"\r\n")
    (data / "channel_mappings.csv").write_bytes(
        b"\xef\xbb\xbf" + blob + b'uk,"FBM\n1",B000000002,FBM,,1.00,2.00,,caf\xe9\r\n'
    )
    skus = inv.seller_skus(data, "us")
    assert skus.to_submit == {"FBA-1", "FBM-1", "FBM-FLOOR", "FBM-CEIL", "SKU ü-7"}
    assert skus.not_listed == {"NO-ASIN"} and skus.master_missing == frozenset()


# -- 3: nothing applied twice ---------------------------------------------------------------------------------------
def finish_all(client, server) -> None:
    for feed_id in [f.feed_id for f in server.state.store.feeds.values()]:
        assert client.finish_feed(feed_id).processing_status == "DONE"


def test_the_same_feed_content_twice_is_caught(tapped, client):
    _, server, tap = tapped
    document = feed_document([("FBM-1", [offer("15")])])
    for _ in range(2):
        client.submit_feed("JSON_LISTINGS_FEED", [US], document, content_type="application/json")
    finish_all(client, server)
    with pytest.raises(AssertionError, match="invariant 3: the same feed content"):
        inv.no_double_submission(tap, server)


def test_the_same_messages_renumbered_in_one_run_are_caught(tapped, client):
    _, server, tap = tapped
    messages = [("FBM-1", [offer("15")]), ("FBM-CEIL", [offer("12.00")])]
    client.submit_feed("JSON_LISTINGS_FEED", [US], feed_document(messages), content_type="application/json")
    inv.no_double_submission(tap, server)
    # The resend renumbers its messages and writes 12.0 for 12.00: the same offers all the same.
    again = feed_document([("FBM-CEIL", [offer("12.0")]), ("FBM-1", [offer("15")])], first_id=7)
    client.submit_feed("JSON_LISTINGS_FEED", [US], again, content_type="application/json")
    finish_all(client, server)
    with pytest.raises(AssertionError, match="invariant 3: the same feed content"):
        inv.no_double_submission(tap, server)


def test_an_order_confirmed_twice_is_caught(tapped, client):
    _, server, _ = tapped
    created = httpx.post(
        f"{server.url}/_emulator/orders",
        json={"marketplaceId": US, "items": [{"sku": "FBM-1", "quantity": 2}]},
        timeout=10,
    ).json()
    order_id = created["orderId"]
    item = client.get_order_items(order_id)[0]["OrderItemId"]
    package = {
        "packageReferenceId": "1",
        "carrierCode": "UPS",
        "trackingNumber": "1Z999",
        "shipDate": datetime.now(UTC).isoformat(),
        "orderItems": [{"orderItemId": item, "quantity": 1}],
    }
    client.confirm_shipment(order_id, US, package)
    assert inv.no_double_confirmation(server) == 1
    client.confirm_shipment(order_id, US, package)  # the same package again: Amazon takes it (one unit left)
    with pytest.raises(AssertionError, match=rf"invariant 3: order {order_id} confirmed 2 times \(1, UPS 1Z999\)"):
        inv.no_double_confirmation(server)


def test_the_same_patch_accepted_twice_is_caught(tapped):
    _, server, tap = tapped
    patch(server, "FBM-1", [offer("15.00")])
    inv.no_double_submission(tap, server)
    patch(server, "FBM-1", [offer("15.00")])
    with pytest.raises(AssertionError, match=r"identical patches accepted more than once for \['FBM-1'\]"):
        inv.no_double_submission(tap, server)


def materialize_reservations(data) -> None:
    result = dg.materialize([reservations], partition_key="us", resources={"warehouse": Warehouse(data_dir=str(data))})
    assert result.success


def test_a_reservation_counted_twice_is_caught(tmp_path, monkeypatch):
    data = seller_dir(tmp_path)
    open_order_on_uk(data)
    materialize_reservations(data)
    assert inv.reservations_counted_once(data, "us") == 1
    import assets.orders

    def per_notification(con, channels, master_as_of, changes="order_changes", items="order_change_items"):
        # The bug planted: every notification's items summed, not each order's once.
        return con.sql(
            f"SELECT sku, sum(quantity)::BIGINT AS reserved_quantity, count(DISTINCT amazon_order_id)::BIGINT "
            f"AS open_orders, min(now()) AS oldest_order_at FROM {items} GROUP BY sku"
        )

    monkeypatch.setattr(assets.orders.orders, "reservations", per_notification)
    materialize_reservations(data)
    with pytest.raises(AssertionError, match=r"FBM-1: reserved 4 unit\(s\) in 1 order\(s\).*hold 2.*counted 2 times"):
        inv.reservations_counted_once(data, "us")


def test_a_notification_requesting_runs_twice_is_caught(tmp_path):
    data = seller_dir(tmp_path)
    open_order_on_uk(data)  # 2 ORDER_CHANGE on uk: an inventory run for each of the seller's channels
    store = data / "warehouse" / "_notifications.duckdb"

    def request(channel: str, count: int, key: str) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=key, job_name="inventory_job", partition_key=channel, tags={"notifications": str(count)}
        )

    once = [request(c, 2, f"k-{c}") for c in ("us", "uk", "de")]
    assert inv.requested_runs_bounded(store, once, ticks=1) == 3
    with pytest.raises(AssertionError, match=r"us/inventory_job: requests carry 4 notification\(s\), 2 stored"):
        inv.requested_runs_bounded(store, [*once, request("us", 2, "k-us-again")], ticks=2)
    with pytest.raises(AssertionError, match=r"us/inventory_job: 2 runs requested in 1 tick"):
        inv.requested_runs_bounded(store, [*once[1:], request("us", 1, "a"), request("us", 1, "b")], ticks=1)


# -- 4: every notification applied or dead-lettered ----------------------------------------------------------------
def test_a_notification_neither_stored_nor_dead_lettered_is_caught(tmp_path):
    data = seller_dir(tmp_path)
    stored = order_change("111-0000001-0000001", "Unshipped", "2026-11-29T10:00:00Z", [("FBM-1", 1)])
    lost = order_change("111-0000002-0000001", "Unshipped", "2026-11-29T10:01:00Z", [("FBM-1", 1)])
    store_orders(data, [stored])
    store = data / "warehouse" / "_notifications.duckdb"
    sent = {json.dumps(stored): stored["NotificationMetadata"]["NotificationId"]}
    inv.notifications_accounted(store, sent, queue_left=0)
    sent[json.dumps(lost)] = lost["NotificationMetadata"]["NotificationId"]
    with pytest.raises(AssertionError, match=r"invariant 4: 1 message\(s\) neither applied nor dead-lettered"):
        inv.notifications_accounted(store, sent, queue_left=0)


# -- 5: convergence, on the patch path and the feed path -------------------------------------------------------------
@pytest.mark.parametrize("path", ["patch", "feed"])
def test_an_offer_accepted_but_not_applied_is_caught(tapped, tmp_path, path):
    data, server, _ = tapped
    spapi = spapi_for(server, tmp_path)
    operation = "patchListingsItem" if path == "patch" else "createFeed"
    # Amazon answers ACCEPTED (a DONE report for the feed) and applies nothing; a read-back sample of 0 lets it pass.
    httpx.post(f"{server.url}/_emulator/faults", json={"kind": "silent_drop", "operation": operation}, timeout=10)
    push = {"readback_sample": 0, **({"feed_threshold": 0} if path == "feed" else {})}
    result = run(data, "us", spapi, push=push)
    with pytest.raises(AssertionError, match=r"invariant 5: .*price on Amazon"):
        inv.converged(data, "us", result.run_id, server, US, SELLER)


# -- 6: secrets in the run's event log -------------------------------------------------------------------------------
SECRET = "Atzr|a-refresh-token-that-leaked-0123"


@dg.asset(partitions_def=channel_partitions)
def leaky(context):  # noqa: ANN001 - Dagster reads the hint at runtime; this module postpones annotations
    context.log.info(f"refreshing the grant {SECRET}")
    return dg.MaterializeResult(metadata={"note": "fine"})


@dg.asset(partitions_def=channel_partitions)
def leaky_metadata():
    grant = os.environ["SPAPI_LWA_REFRESH_TOKEN_A9OTHERSELLER99"]
    return dg.MaterializeResult(metadata={"config": dg.MetadataValue.json({"grant": grant})})


def test_a_secret_logged_in_a_real_run_is_caught_from_the_event_log():
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([leaky], partition_key="us", instance=instance)
        # What the scenarios scanned before: the in-process events carry no context.log message.
        assert inv.no_secrets([SECRET], texts=[str(e) for e in result.all_events])
        with pytest.raises(AssertionError, match="invariant 6: secrets leaked"):
            inv.no_secrets([SECRET], texts=inv.run_log_texts(instance, result.run_id))


def test_the_scenario_scans_its_runs_logs_for_the_grants_in_their_environment(tmp_path, emulator_factory, caplog):
    scenario = Scenario("leak", tmp_path, emulator_factory, caplog)
    scenario.start()
    lwa_token(scenario.server)  # an access token to look for too
    assert RUN_ENV["SPAPI_LWA_REFRESH_TOKEN_A9OTHERSELLER99"] in scenario.secrets()
    assert scenario.run(assets=[leaky_metadata]).success
    assert "SPAPI_LWA_REFRESH_TOKEN_A9OTHERSELLER99" not in os.environ, "the run's environment outlived the run"
    with pytest.raises(AssertionError, match="invariant 6: secrets leaked: text"):
        scenario.check_secrets()


def test_a_leaked_secret_is_caught(tmp_path):
    leaky_file = tmp_path / "feed.txt"
    leaky_file.write_bytes(b"sku\tprice\nAtzr|emulator-refresh-token\n")
    with pytest.raises(AssertionError, match="invariant 6"):
        inv.no_secrets(["Atzr|emulator-refresh-token"], files=[leaky_file])
    with pytest.raises(AssertionError, match="invariant 6"):
        inv.no_secrets(["Atza|abcdefgh123"], texts=["Unauthorized: token Atza|abcdefgh123 refused"])
    assert inv.no_secrets(["Atza|abcdefgh123"], files=[leaky_file], texts=["clean"]) == 2


# -- every scenario's faults were hit ---------------------------------------------------------------------------------
def test_a_fault_never_hit_fails_the_scenario(tmp_path, emulator_factory, caplog):
    scenario = Scenario("unused", tmp_path, emulator_factory, caplog)
    server = scenario.start()
    scenario.fault(kind="status", status=500, operation="getFeed")
    scenario.control("POST", "/faults", json={"kind": "lost_answer", "operation": "createFeed", "status": 503})
    scenario.tap.fail_documents("PUT", "drop", 1)
    with pytest.raises(AssertionError, match=r"never hit: \['drop uploadDocument', 'lost_answer/503 createFeed', "):
        scenario.assert_faults_hit()
    token = lwa_token(server)
    httpx.get(f"{server.url}/feeds/2021-06-30/feeds/1", headers={"x-amz-access-token": token}, timeout=10)
    with pytest.raises(httpx.TransportError):
        httpx.put(f"{server.url}/_s3/spapi-emulator-documents/x", content=b"{}", timeout=10)
    with pytest.raises(AssertionError, match=r"never hit: \['lost_answer/503 createFeed'\]"):
        scenario.assert_faults_hit()
    assert scenario.row.faults_hit["status/500 getFeed"] == 1
    assert scenario.row.faults_hit["drop uploadDocument"] == 1
    row = scenario.finish()
    assert row.why_na["4"] == "no notification sent" and row.why_na["1"] == "no reason given"
