"""Typed helpers and pagination against the emulator."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from resources.spapi import InvalidInput, ResourceNotFound
from tests.spapi.conftest import US, control, listings


def test_inventory_summaries_all_pages(emulator, make_client) -> None:
    client = make_client(emulator)
    summaries = client.get_inventory_summaries(US)
    fba = {row["sku"]: row["fbaFulfillable"] for row in listings(emulator, fulfillment="FBA")}
    assert len(summaries) == len(fba) > 50
    assert {s["sellerSku"]: s["inventoryDetails"]["fulfillableQuantity"] for s in summaries} == fba
    assert client.counters.by_operation["getInventorySummaries"].calls > 1  # more than one page


def test_orders_and_order_items_all_pages(emulator, make_client) -> None:
    client = make_client(emulator)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    rows = listings(emulator)
    created = {
        control(emulator, "POST", "/orders", json={"marketplaceId": US, "items": [{"sku": r["sku"]}]})["orderId"]
        for r in rows[:5]
    }
    orders = client.get_orders([US], created_after=since, max_results_per_page=2)
    assert created <= {o["AmazonOrderId"] for o in orders}
    assert client.counters.by_operation["getOrders"].calls >= 3
    items = client.get_order_items(sorted(created)[0])
    assert items and items[0]["SellerSKU"] in {r["sku"] for r in rows[:5]}
    with pytest.raises(ValueError):
        client.get_orders([US])


def test_search_orders_every_page_with_the_fulfillment_dataset(emulator, make_client) -> None:
    """Orders 2026-01-01: every page (nextToken passed back as paginationToken with the same filters), items always
    embedded, the order's status only with includedData FULFILLMENT."""
    client = make_client(emulator)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    rows = listings(emulator)
    created = {
        control(emulator, "POST", "/orders", json={"marketplaceId": US, "items": [{"sku": r["sku"]}]})["orderId"]
        for r in rows[:5]
    }
    pages = client.iter_search_orders(
        [US], last_updated_after=since, included_data=["FULFILLMENT"], max_results_per_page=2
    )
    found = list(itertools.islice(pages, 100))  # a token not honoured would serve the first page forever
    assert len(found) < 100
    mine = {o["orderId"]: o for o in found if o["orderId"] in created}
    assert set(mine) == created and len(found) == len({o["orderId"] for o in found})
    assert client.counters.by_operation["searchOrders"].calls >= 3
    assert all(o["fulfillment"]["fulfillmentStatus"] and o["orderItems"] for o in mine.values())
    bare = client.search_orders_page([US], last_updated_after=since, max_results_per_page=100)
    assert "fulfillment" not in bare["orders"][0]
    with pytest.raises(ValueError):
        client.search_orders_page([US])


def test_confirm_shipment_for_a_merchant_order(emulator, make_client) -> None:
    client = make_client(emulator)
    fbm = next(r for r in listings(emulator, fulfillment="FBM") if r["quantity"])
    order = control(emulator, "POST", "/orders", json={"marketplaceId": US, "items": [{"sku": fbm["sku"]}]})
    item = client.get_order_items(order["orderId"])[0]
    client.confirm_shipment(
        order["orderId"],
        US,
        {
            "packageReferenceId": "1",
            "carrierCode": "UPS",
            "trackingNumber": "1Z999",
            "shipDate": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "orderItems": [{"orderItemId": item["OrderItemId"], "quantity": 1}],
        },
    )
    shipped = client.get_orders([US], created_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert next(o for o in shipped if o["AmazonOrderId"] == order["orderId"])["OrderStatus"] == "Shipped"
    with pytest.raises(InvalidInput) as info:
        client.confirm_shipment(order["orderId"], US, {"packageReferenceId": "1", "shipDate": "02/21/2022"})
    assert info.value.status == 400


def test_pricing_batches_of_twenty_and_forty(emulator, make_client) -> None:
    client = make_client(emulator)
    rows = listings(emulator)[:45]
    asins = [r["asin"] for r in rows[:25]]
    offers = client.get_item_offers_batch(US, asins)
    assert [o["request"]["Asin"] for o in offers] == asins
    assert client.counters.by_operation["getItemOffersBatch"].calls == 2
    summaries = client.get_competitive_summary(US, asins)
    assert [s["body"]["asin"] for s in summaries] == asins
    assert client.counters.by_operation["getCompetitiveSummary"].calls == 2
    foep = client.get_featured_offer_expected_price_batch(US, [r["sku"] for r in rows])
    assert [f["request"]["sku"] for f in foep] == [r["sku"] for r in rows]
    assert client.counters.by_operation["getFeaturedOfferExpectedPriceBatch"].calls == 2


def test_listings_get_patch_put_and_restrictions(emulator, make_client) -> None:
    client = make_client(emulator)
    row = next(r for r in listings(emulator, fulfillment="FBM") if r["price"])
    item = client.get_listings_item(row["sku"], [US], included_data=["summaries", "offers"])
    assert item["summaries"][0]["asin"] == row["asin"]
    new_price = (Decimal(row["minPrice"]) + Decimal("0.01")).quantize(Decimal("0.01"))
    patch = {
        "op": "replace",
        "path": "/attributes/purchasable_offer",
        "value": [
            {"marketplace_id": US, "currency": "USD", "our_price": [{"schedule": [{"value_with_tax": new_price}]}]}
        ],
    }
    answer = client.patch_listings_item(row["sku"], [US], patches=[patch])
    assert answer["status"] == "ACCEPTED", answer
    assert Decimal(listings(emulator, sku=row["sku"])[0]["price"]) == new_price
    with pytest.raises(TypeError, match="float"):
        client.patch_listings_item(row["sku"], [US], patches=[{"op": "replace", "path": "/x", "value": [1.5]}])
    put = client.put_listings_item(
        row["sku"],
        [US],
        product_type="PRODUCT",
        attributes={"condition_type": [{"value": "new_new"}]},
        mode="VALIDATION_PREVIEW",
    )
    assert put["status"] in ("VALID", "INVALID")
    assert isinstance(client.get_listings_restrictions(row["asin"], [US]), list)
    with pytest.raises(ResourceNotFound) as info:
        client.get_listings_item("NO-SUCH-SKU", [US])
    assert info.value.request_id and info.value.amazon_code


def test_notifications_subscription(emulator, make_client) -> None:
    client = make_client(emulator)
    destination = client.create_destination("q", "arn:aws:sqs:us-east-1:000000000000:q")
    sub = client.create_subscription("ANY_OFFER_CHANGED", destination["destinationId"])
    assert sub["destinationId"] == destination["destinationId"]
    assert client.get_subscription("ANY_OFFER_CHANGED")["subscriptionId"] == sub["subscriptionId"]


def test_nothing_is_added_to_the_query(emulator, make_client) -> None:
    client = make_client(emulator)
    sent = []
    client._http.event_hooks["request"].append(sent.append)
    client.get_listings_restrictions("B000000000", [US])
    assert dict(sent[-1].url.params) == {"asin": "B000000000", "sellerId": client.seller_id, "marketplaceIds": US}
