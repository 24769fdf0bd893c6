"""Pricing, FBA inventory, orders, sellers and notifications (delivered to a moto SQS server), persistence across a
restart, and injected request faults — each response validated against Amazon's model."""

from __future__ import annotations

import json
import time

import boto3
import httpx
import pytest

from emulator.testing import SELLER, US, Api, conform, conform_schema, fbm_listing

SUMMARIES = "/fba/inventory/v1/summaries"


def test_pricing_buy_box_rule_and_foep(api):
    mine = fbm_listing(api)
    asin = mine["asin"]
    price = float(mine["price"])
    api.control(
        "POST",
        "/competitors",
        json={
            "marketplaceId": US,
            "asin": asin,
            "sellerId": "A1RIVALFBA0001",
            "price": f"{price - 1:.2f}",
            "shipping": "0",
            "fulfillment": "FBA",
        },
    )
    api.control(
        "POST",
        "/competitors",
        json={
            "marketplaceId": US,
            "asin": asin,
            "sellerId": "A0RIVALFBM0001",
            "price": f"{price - 1:.2f}",
            "shipping": "0",
            "fulfillment": "FBM",
        },
    )
    batch = api(
        "POST",
        "/batches/products/pricing/v0/itemOffers",
        json={
            "requests": [
                {
                    "uri": f"/products/pricing/v0/items/{asin}/offers",
                    "method": "GET",
                    "MarketplaceId": US,
                    "ItemCondition": "New",
                    "CustomerType": "Consumer",
                },
                {
                    "uri": "/products/pricing/v0/items/B0NOTHERE1/offers",
                    "method": "GET",
                    "MarketplaceId": US,
                    "ItemCondition": "New",
                },
            ]
        },
    )
    assert batch.status_code == 200
    conform("productPricingV0", "getItemOffersBatch", 200, batch.json())
    first, second = batch.json()["responses"]
    assert second["status"]["statusCode"] == 400
    payload = first["body"]["payload"]
    winners = [o for o in payload["Offers"] if o["IsBuyBoxWinner"]]
    # the lowest landed price among eligible offers, FBA preferred on ties (ties at price-1 + 0 shipping)
    assert [w["SellerId"] for w in winners] == ["A1RIVALFBA0001"] or min(
        o["ListingPrice"]["Amount"] + o["Shipping"]["Amount"] for o in payload["Offers"]
    ) < price - 1
    assert isinstance(payload["Offers"][0]["ListingPrice"]["Amount"], float)
    listing_batch = api(
        "POST",
        "/batches/products/pricing/v0/listingOffers",
        json={
            "requests": [
                {
                    "uri": f"/products/pricing/v0/listings/{mine['sku']}/offers",
                    "method": "GET",
                    "MarketplaceId": US,
                    "ItemCondition": "New",
                }
            ]
        },
    )
    conform("productPricingV0", "getListingOffersBatch", 200, listing_batch.json())
    assert any(o["MyOffer"] for o in listing_batch.json()["responses"][0]["body"]["payload"]["Offers"])
    summary = api(
        "POST",
        "/batches/products/pricing/2022-05-01/items/competitiveSummary",
        json={
            "requests": [
                {
                    "asin": asin,
                    "marketplaceId": US,
                    "method": "GET",
                    "uri": "/products/pricing/2022-05-01/items/competitiveSummary",
                    "includedData": ["featuredBuyingOptions", "referencePrices", "lowestPricedOffers"],
                    "lowestPricedOffersInputs": [{"itemCondition": "New", "offerType": "Consumer"}],
                }
            ]
        },
    )
    conform("productPricing_2022-05-01", "getCompetitiveSummary", 200, summary.json())
    foep = api(
        "POST",
        "/batches/products/pricing/2022-05-01/offer/featuredOfferExpectedPrice",
        json={
            "requests": [
                {
                    "uri": "/products/pricing/2022-05-01/offer/featuredOfferExpectedPrice",
                    "method": "GET",
                    "marketplaceId": US,
                    "sku": mine["sku"],
                }
            ]
        },
    )
    conform("productPricing_2022-05-01", "getFeaturedOfferExpectedPriceBatch", 200, foep.json())
    result = foep.json()["responses"][0]["body"]["featuredOfferExpectedPriceResults"][0]
    assert result["resultStatus"] == "VALID_FOEP"
    assert result["featuredOfferExpectedPrice"]["listingPrice"]["amount"] <= price - 1


def test_price_war_moves_competitors_down(api):
    mine = fbm_listing(api)
    before = min(
        float(o["price"]) + float(o["shipping"])
        for o in api.control("GET", "/offers", params={"marketplaceId": US, "asin": mine["asin"]})["offers"]
    )
    api.control(
        "POST",
        "/competitors",
        json={
            "marketplaceId": US,
            "asin": mine["asin"],
            "sellerId": "A1WARRIOR0001",
            "price": mine["price"],
            "shipping": "0",
        },
    )
    api.control("POST", "/world/price-war", json={"marketplaceId": US, "asin": mine["asin"], "stepPercent": 5})
    api.control("POST", "/world/step", json={"steps": 3, "orders": 0, "priceMoves": 0})
    after = min(
        float(o["price"]) + float(o["shipping"])
        for o in api.control("GET", "/offers", params={"marketplaceId": US, "asin": mine["asin"]})["offers"]
    )
    assert after < before


def test_inventory_pagination_and_change_filter(api):
    first = api(
        "GET",
        SUMMARIES,
        params={"granularityType": "Marketplace", "granularityId": US, "marketplaceIds": US, "details": "true"},
    )
    assert first.status_code == 200
    conform("fbaInventory", "getInventorySummaries", 200, first.json())
    page = first.json()
    total = len(page["payload"]["inventorySummaries"])
    while "pagination" in page:
        page = api(
            "GET",
            SUMMARIES,
            params={
                "granularityType": "Marketplace",
                "granularityId": US,
                "marketplaceIds": US,
                "nextToken": page["pagination"]["nextToken"],
            },
        ).json()
        total += len(page["payload"]["inventorySummaries"])
    fba = [
        x
        for x in api.control("GET", "/listings", params={"marketplaceId": US})["listings"]
        if x["fulfillment"] == "FBA"
    ]
    assert total == len(fba)
    start = api.control("POST", "/clock/advance", json={"seconds": 10})["now"]
    sku = fba[0]["sku"]
    api.control("POST", "/fba", json={"marketplaceId": US, "sku": sku, "quantity": 3})
    changed = api(
        "GET",
        SUMMARIES,
        params={
            "granularityType": "Marketplace",
            "granularityId": US,
            "marketplaceIds": US,
            "details": "true",
            "startDateTime": start,
        },
    ).json()
    summaries = changed["payload"]["inventorySummaries"]
    assert [s["sellerSku"] for s in summaries] == [sku]
    assert summaries[0]["inventoryDetails"]["fulfillableQuantity"] == 3
    bad = api("GET", SUMMARIES, params={"granularityType": "Marketplace", "granularityId": US})
    assert bad.status_code == 400
    conform("fbaInventory", "getInventorySummaries", 400, bad.json())


def test_orders_reduce_stock_and_confirm_shipment(api):
    fbm = fbm_listing(api)
    fba = api.find(fulfillment="FBA")
    created = api.control("POST", "/orders", json={"marketplaceId": US, "items": [{"sku": fbm["sku"], "quantity": 2}]})
    api.control("POST", "/orders", json={"marketplaceId": US, "items": [{"sku": fba["sku"], "quantity": 1}]})
    assert api.listing(fbm["sku"])["quantity"] == fbm["quantity"] - 2
    assert api.listing(fba["sku"])["fbaFulfillable"] == fba["fbaFulfillable"] - 1
    orders = api("GET", "/orders/v0/orders", params={"MarketplaceIds": US, "CreatedAfter": "2000-01-01T00:00:00Z"})
    conform("ordersV0", "getOrders", 200, orders.json())
    assert len(orders.json()["payload"]["Orders"]) == 2
    order_id = created["orderId"]
    order = api("GET", f"/orders/v0/orders/{order_id}")
    conform("ordersV0", "getOrder", 200, order.json())
    assert order.json()["payload"]["OrderStatus"] == "Unshipped"
    items = api("GET", f"/orders/v0/orders/{order_id}/orderItems")
    conform("ordersV0", "getOrderItems", 200, items.json())
    item = items.json()["payload"]["OrderItems"][0]
    assert isinstance(item["ItemPrice"]["Amount"], str)
    bad = api(
        "POST",
        f"/orders/v0/orders/{order_id}/shipmentConfirmation",
        json={
            "marketplaceId": US,
            "packageDetail": {
                "packageReferenceId": "1",
                "carrierCode": "UPS",
                "trackingNumber": "1Z",
                "shipDate": "02/21/2022",
                "orderItems": [{"orderItemId": item["OrderItemId"], "quantity": 2}],
            },
        },
    )
    assert bad.status_code == 400
    conform("ordersV0", "confirmShipment", 400, bad.json())
    ok = api(
        "POST",
        f"/orders/v0/orders/{order_id}/shipmentConfirmation",
        json={
            "marketplaceId": US,
            "packageDetail": {
                "packageReferenceId": "1",
                "carrierCode": "UPS",
                "trackingNumber": "1Z",
                "shipDate": "2026-01-02T10:00:00Z",
                "orderItems": [{"orderItemId": item["OrderItemId"], "quantity": 2}],
            },
        },
    )
    assert ok.status_code == 204 and ok.content == b""
    assert api("GET", f"/orders/v0/orders/{order_id}").json()["payload"]["OrderStatus"] == "Shipped"
    repeat = api("POST", f"/orders/v0/orders/{order_id}/shipmentConfirmation", json=json.loads(ok.request.content))
    assert repeat.status_code == 400  # an order already shipped takes no second confirmation
    conform("ordersV0", "confirmShipment", 400, repeat.json())
    assert len(api.server.state.store.orders[order_id].shipments) == 1
    missing = api("GET", "/orders/v0/orders/111-0000000-0000000")
    assert missing.status_code == 404
    conform("ordersV0", "getOrder", 404, missing.json())


def test_sellers(api):
    response = api("GET", "/sellers/v1/marketplaceParticipations")
    conform("sellers", "getMarketplaceParticipations", 200, response.json())
    assert {p["marketplace"]["id"] for p in response.json()["payload"]} >= {US}


def test_notifications_arrive_in_sqs(emulator_factory, moto_sqs):
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_sqs,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue_url = sqs.create_queue(QueueName="spapi-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    server = emulator_factory(sqs_endpoint=moto_sqs)
    grantless = Api(server, scope="sellingpartnerapi::notifications")
    seller = Api(server)
    destination = grantless(
        "POST", "/notifications/v1/destinations", json={"name": "q", "resourceSpecification": {"sqs": {"arn": arn}}}
    )
    conform("notifications", "createDestination", 200, destination.json())
    assert (
        grantless(
            "POST", "/notifications/v1/destinations", json={"name": "q", "resourceSpecification": {"sqs": {"arn": arn}}}
        ).status_code
        == 409
    )
    conform("notifications", "getDestinations", 200, grantless("GET", "/notifications/v1/destinations").json())
    destination_id = destination.json()["payload"]["destinationId"]
    versions = {
        "ORDER_CHANGE": "1.0",
        "ANY_OFFER_CHANGED": "1.0",
        "FBA_INVENTORY_AVAILABILITY_CHANGES": "1.0",
        "FEED_PROCESSING_FINISHED": "2020-09-04",
    }
    subscriptions = {}
    for kind, version in versions.items():
        created = seller(
            "POST",
            f"/notifications/v1/subscriptions/{kind}",
            json={"payloadVersion": version, "destinationId": destination_id},
        )
        conform("notifications", "createSubscription", 200, created.json())
        subscriptions[kind] = created.json()["payload"]["subscriptionId"]
    conform(
        "notifications", "getSubscription", 200, seller("GET", "/notifications/v1/subscriptions/ORDER_CHANGE").json()
    )
    fbm = fbm_listing(seller)
    fba = seller.find(fulfillment="FBA")
    seller.control("POST", "/orders", json={"marketplaceId": US, "items": [{"sku": fbm["sku"], "quantity": 1}]})
    seller.control("POST", "/fba", json={"marketplaceId": US, "sku": fba["sku"], "quantity": 5})
    seller.control(
        "POST",
        "/competitors",
        json={"marketplaceId": US, "asin": fbm["asin"], "sellerId": "A1RIVAL0001", "price": "1.00"},
    )
    document = seller("POST", "/feeds/2021-06-30/documents", json={"contentType": "application/json"}).json()
    httpx.put(document["url"], content=b"{}", headers={"Content-Type": "application/json"})
    seller(
        "POST",
        "/feeds/2021-06-30/feeds",
        json={
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [US],
            "inputFeedDocumentId": document["feedDocumentId"],
        },
    )
    schemas = {
        "ORDER_CHANGE": "OrderChangeNotification.json",
        "ANY_OFFER_CHANGED": "AnyOfferChangedNotification.json",
        "FBA_INVENTORY_AVAILABILITY_CHANGES": "FBAInventoryAvailabilityChangeNotification.json",
        "FEED_PROCESSING_FINISHED": "FeedProcessingFinishedNotification.json",
    }
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(seen) != set(schemas):
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            body = json.loads(message["Body"])
            seen[body.get("NotificationType") or body.get("notificationType")] = body
    assert set(seen) == set(schemas)
    for kind, schema in schemas.items():
        conform_schema(f"notifications/{schema}", seen[kind])
    assert seen["FEED_PROCESSING_FINISHED"]["payload"]["feedProcessingFinishedNotification"]["processingStatus"] in (
        "DONE",
        "FATAL",
    )
    deleted = grantless("DELETE", f"/notifications/v1/subscriptions/ORDER_CHANGE/{subscriptions['ORDER_CHANGE']}")
    conform("notifications", "deleteSubscriptionById", 200, deleted.json())
    missing = seller("GET", "/notifications/v1/subscriptions/ORDER_CHANGE")
    assert missing.status_code == 404
    conform("notifications", "getSubscription", 404, missing.json())


def test_state_survives_restart(emulator_factory, tmp_path):
    first = emulator_factory(state_dir=tmp_path)
    api = Api(first)
    listing = fbm_listing(api)
    api(
        "PATCH",
        f"/listings/2021-08-01/items/{SELLER}/{listing['sku']}",
        params={"marketplaceIds": US},
        json={
            "productType": "PRODUCT",
            "patches": [
                {
                    "op": "replace",
                    "path": "/attributes/fulfillment_availability",
                    "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 321}],
                }
            ],
        },
    )
    order = api.control("POST", "/orders", json={"marketplaceId": US, "items": [{"sku": listing["sku"]}]})
    first.stop()
    second = emulator_factory(state_dir=tmp_path, synthetic=5)  # the seed is ignored: state wins
    again = Api(second)
    assert again.listing(listing["sku"])["quantity"] == 320
    assert again("GET", f"/orders/v0/orders/{order['orderId']}").status_code == 200


@pytest.mark.parametrize("status", [429, 500, 503])
def test_injected_status_faults(api, status):
    api.control(
        "POST",
        "/faults",
        json={"kind": "status", "operation": "getMarketplaceParticipations", "status": status, "count": 2},
    )
    codes = [api("GET", "/sellers/v1/marketplaceParticipations") for _ in range(3)]
    assert [c.status_code for c in codes] == [status, status, 200]
    conform("sellers", "getMarketplaceParticipations", status, codes[0].json())
    assert "x-amzn-RateLimit-Limit" not in codes[0].headers and codes[0].headers["x-amzn-RequestId"]


def test_injected_latency_and_dropped_connection(api):
    api.control("POST", "/faults", json={"kind": "latency", "operation": "*", "latency_ms": 300})
    started = time.monotonic()
    assert api("GET", "/sellers/v1/marketplaceParticipations").status_code == 200
    assert time.monotonic() - started >= 0.3
    api.control("POST", "/faults", json={"kind": "drop", "operation": "getMarketplaceParticipations"})
    with pytest.raises(httpx.TransportError):
        httpx.get(api.server.url + "/sellers/v1/marketplaceParticipations", headers={"x-amz-access-token": api.token})
    assert api("GET", "/sellers/v1/marketplaceParticipations").status_code == 200
