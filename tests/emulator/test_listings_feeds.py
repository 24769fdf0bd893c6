"""Listings writes and their rules, restrictions, and the Feeds lifecycle with JSON and legacy flat-file feeds."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest

from emulator.testing import (
    SELLER,
    US,
    Api,
    conform,
    conform_schema,
    fbm_listing,
    price_patch,
    quantity_patch,
)

ITEMS = f"/listings/2021-08-01/items/{SELLER}"


def _patch(api: Api, sku: str, *patches, mode: str | None = None) -> httpx.Response:
    params = {"marketplaceIds": US, **({"mode": mode} if mode else {})}
    response = api("PATCH", f"{ITEMS}/{sku}", params=params, json={"productType": "PRODUCT", "patches": list(patches)})
    assert response.status_code == 200, response.text
    conform("listingsItems_2021-08-01", "patchListingsItem", 200, response.json())
    return response


def _get(api: Api, sku: str) -> dict:
    response = api(
        "GET",
        f"{ITEMS}/{sku}",
        params={
            "marketplaceIds": US,
            "includedData": "summaries,attributes,issues,offers,fulfillmentAvailability,productTypes,relationships",
        },
    )
    assert response.status_code == 200, response.text
    conform("listingsItems_2021-08-01", "getListingsItem", 200, response.json())
    return response.json()


def test_patch_lands_and_rules_reject(api):
    listing = fbm_listing(api)
    sku = listing["sku"]
    target = listing["minPrice"]  # inside [min, max]
    body = _patch(api, sku, price_patch(target), quantity_patch(7)).json()
    assert body["status"] == "ACCEPTED" and body["issues"] == []
    item = _get(api, sku)
    assert item["offers"][0]["price"] == {"currencyCode": "USD", "amount": target}
    assert item["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 7}]
    too_high = str(int(float(listing["maxPrice"])) + 10) + ".00"
    rejected = _patch(api, sku, price_patch(too_high)).json()
    assert rejected["status"] == "INVALID" and rejected["issues"][0]["categories"] == ["INVALID_PRICE"]
    negative = _patch(api, sku, quantity_patch(-1)).json()
    assert negative["status"] == "INVALID"
    assert _get(api, sku)["offers"][0]["price"]["amount"] == target  # nothing changed
    preview = _patch(api, sku, quantity_patch(3), mode="VALIDATION_PREVIEW").json()
    assert preview["status"] == "VALID" and api.listing(sku)["quantity"] == 7
    gated = (
        fbm_listing(api, gated=True)
        if any(
            x["productType"] == "WATCH"
            for x in api.control("GET", "/listings", params={"marketplaceId": US})["listings"]
        )
        else None
    )
    if gated is not None:
        blocked = _patch(api, gated["sku"], quantity_patch(1)).json()
        assert blocked["status"] == "INVALID" and blocked["issues"][0]["categories"] == ["QUALIFICATION_REQUIRED"]
    fba = api.find(fulfillment="FBA")
    warned = _patch(api, fba["sku"], quantity_patch(999)).json()
    assert warned["status"] == "ACCEPTED" and warned["issues"][0]["severity"] == "WARNING"
    assert api.listing(fba["sku"])["fbaFulfillable"] == fba["fbaFulfillable"]


def test_gated_category_from_seed(emulator_factory):
    api = Api(emulator_factory(synthetic=1000))
    gated = api.find(productType="WATCH")
    blocked = _patch(api, gated["sku"], quantity_patch(1)).json()
    assert blocked["status"] == "INVALID" and "QUALIFICATION_REQUIRED" in blocked["issues"][0]["categories"]
    restrictions = api(
        "GET",
        "/listings/2021-08-01/restrictions",
        params={"asin": gated["asin"], "sellerId": SELLER, "marketplaceIds": US},
    )
    assert restrictions.status_code == 200
    conform("listingsRestrictions_2021-08-01", "getListingsRestrictions", 200, restrictions.json())
    assert restrictions.json()["restrictions"][0]["reasons"][0]["reasonCode"] == "APPROVAL_REQUIRED"
    free = api.find(productType="PRODUCT")
    open_ = api(
        "GET",
        "/listings/2021-08-01/restrictions",
        params={"asin": free["asin"], "sellerId": SELLER, "marketplaceIds": US},
    ).json()
    assert open_ == {"restrictions": []}


def test_restrictions_link_each_marketplace_to_its_own_seller_central(emulator_factory):
    api = Api(emulator_factory(synthetic=1000))
    gated = api.find(productType="WATCH")
    uk, de = "A1F83G8C2ARO7P", "A1PA6795UKMFR9"
    answer = api(
        "GET",
        "/listings/2021-08-01/restrictions",
        params={"asin": gated["asin"], "sellerId": SELLER, "marketplaceIds": f"{US},{uk},{de}"},
    ).json()
    conform("listingsRestrictions_2021-08-01", "getListingsRestrictions", 200, answer)
    hosts = {
        r["marketplaceId"]: httpx.URL(r["reasons"][0]["links"][0]["resource"]).host for r in answer["restrictions"]
    }
    assert hosts == {US: "sellercentral.amazon.com", uk: "sellercentral.amazon.co.uk", de: "sellercentral.amazon.de"}
    unknown = api(
        "GET",
        "/listings/2021-08-01/restrictions",
        params={"asin": "B0NOSUCH00", "sellerId": SELLER, "marketplaceIds": uk},
    ).json()
    assert [(r["reasonCode"], r.get("links")) for r in unknown["restrictions"][0]["reasons"]] == [
        ("ASIN_NOT_FOUND", None)
    ]


def test_put_new_asin_needs_identifier_and_delete(api):
    attributes = {
        "item_name": [{"value": "New thing", "marketplace_id": US}],
        "purchasable_offer": [
            {"marketplace_id": US, "currency": "USD", "our_price": [{"schedule": [{"value_with_tax": 12.5}]}]}
        ],
        "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 4}],
    }
    put = api(
        "PUT",
        f"{ITEMS}/NEW-1",
        params={"marketplaceIds": US},
        json={"productType": "PRODUCT", "attributes": attributes},
    )
    conform("listingsItems_2021-08-01", "putListingsItem", 200, put.json())
    assert put.json()["status"] == "INVALID" and put.json()["issues"][0]["code"] == "8560"
    attributes["externally_assigned_product_identifier"] = [
        {"type": "upc", "value": "012345678905", "marketplace_id": US}
    ]
    preview = api(
        "PUT",
        f"{ITEMS}/NEW-1",
        params={"marketplaceIds": US, "mode": "VALIDATION_PREVIEW", "includedData": "issues,identifiers"},
        json={"productType": "PRODUCT", "attributes": attributes},
    ).json()
    assert preview["status"] == "VALID" and preview["identifiers"][0]["asin"].startswith("B0")
    assert api("GET", f"{ITEMS}/NEW-1", params={"marketplaceIds": US}).status_code == 404
    put = api(
        "PUT",
        f"{ITEMS}/NEW-1",
        params={"marketplaceIds": US},
        json={"productType": "PRODUCT", "attributes": attributes},
    ).json()
    assert put["status"] == "ACCEPTED"
    assert _get(api, "NEW-1")["offers"][0]["price"]["amount"] == "12.50"
    gone = api("DELETE", f"{ITEMS}/NEW-1", params={"marketplaceIds": US})
    conform("listingsItems_2021-08-01", "deleteListingsItem", 200, gone.json())
    missing = api("GET", f"{ITEMS}/NEW-1", params={"marketplaceIds": US})
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NOT_FOUND"
    conform("listingsItems_2021-08-01", "getListingsItem", 404, missing.json())


# --- feeds -----------------------------------------------------------------------------------------------------------
def upload(api: Api, content: bytes, content_type: str = "application/json; charset=UTF-8") -> str:
    created = api("POST", "/feeds/2021-06-30/documents", json={"contentType": content_type})
    assert created.status_code == 201, created.text
    conform("feeds_2021-06-30", "createFeedDocument", 201, created.json())
    put = httpx.put(created.json()["url"], content=content, headers={"Content-Type": content_type})
    assert put.status_code == 200, put.text
    return created.json()["feedDocumentId"]


def submit(api: Api, feed_type: str, content: bytes, content_type: str = "application/json; charset=UTF-8") -> str:
    document_id = upload(api, content, content_type)
    created = api(
        "POST",
        "/feeds/2021-06-30/feeds",
        json={"feedType": feed_type, "marketplaceIds": [US], "inputFeedDocumentId": document_id},
    )
    assert created.status_code == 202, created.text
    conform("feeds_2021-06-30", "createFeed", 202, created.json())
    return created.json()["feedId"]


def wait_feed(api: Api, feed_id: str) -> dict:
    for _ in range(200):
        feed = api("GET", f"/feeds/2021-06-30/feeds/{feed_id}")
        conform("feeds_2021-06-30", "getFeed", 200, feed.json())
        if feed.json()["processingStatus"] in ("DONE", "FATAL", "CANCELLED"):
            return feed.json()
        api.control("POST", "/clock/advance", json={"seconds": 1})
    raise AssertionError("feed never finished")


def result(api: Api, document_id: str) -> bytes:
    meta = api("GET", f"/feeds/2021-06-30/documents/{document_id}")
    conform("feeds_2021-06-30", "getFeedDocument", 200, meta.json())
    assert meta.json()["compressionAlgorithm"] == "GZIP"
    raw = httpx.get(meta.json()["url"]).content
    assert raw[:2] == b"\x1f\x8b"
    return gzip.decompress(raw)


def test_json_listings_feed_mixed_report_and_writes_land(api):
    good = fbm_listing(api)
    fba = api.find(fulfillment="FBA")
    messages = [
        {
            "messageId": 1,
            "sku": good["sku"],
            "operationType": "PATCH",
            "productType": "PRODUCT",
            "patches": [price_patch(good["maxPrice"]), quantity_patch(42)],
        },
        {
            "messageId": 2,
            "sku": "UNKNOWN-SKU",
            "operationType": "PATCH",
            "productType": "PRODUCT",
            "patches": [quantity_patch(1)],
        },
        {
            "messageId": 3,
            "sku": good["sku"],
            "operationType": "PARTIAL_UPDATE",
            "productType": "PRODUCT",
            "attributes": {"purchasable_offer": price_patch("0.01")["value"]},
        },
        {
            "messageId": 4,
            "sku": good["sku"],
            "operationType": "PATCH",
            "productType": "PRODUCT",
            "patches": [quantity_patch(-5)],
        },
        {
            "messageId": 5,
            "sku": fba["sku"],
            "operationType": "PATCH",
            "productType": "PRODUCT",
            "patches": [quantity_patch(9)],
        },
    ]
    doc = json.dumps(
        {"header": {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"}, "messages": messages}
    ).encode()
    feed_id = submit(api, "JSON_LISTINGS_FEED", doc)
    feed = wait_feed(api, feed_id)
    assert feed["processingStatus"] == "DONE"
    report = json.loads(result(api, feed["resultFeedDocumentId"]))
    conform_schema("feeds/listings-feed-processing-report-schema-v2.json", report)
    assert report["summary"] == {
        "errors": 3,
        "warnings": 1,
        "messagesProcessed": 5,
        "messagesAccepted": 2,
        "messagesInvalid": 3,
    }
    by_id = {i["messageId"]: i for i in report["issues"]}
    assert set(by_id) == {2, 3, 4, 5} and by_id[5]["severity"] == "WARNING"
    item = _get(api, good["sku"])
    assert item["offers"][0]["price"]["amount"] == good["maxPrice"]
    assert item["fulfillmentAvailability"][0]["quantity"] == 42
    listed = api("GET", "/feeds/2021-06-30/feeds", params={"feedTypes": "JSON_LISTINGS_FEED"})
    conform("feeds_2021-06-30", "getFeeds", 200, listed.json())
    assert [f["feedId"] for f in listed.json()["feeds"]] == [feed_id]


def test_invalid_feed_document_is_fatal_with_report(api):
    doc = json.dumps(
        {
            "header": {"sellerId": SELLER, "version": "2.0"},
            "messages": [{"messageId": 1, "sku": "X", "operationType": "DELETE", "productType": "P"}],
        }
    )
    feed = wait_feed(api, submit(api, "JSON_LISTINGS_FEED", doc.encode()))
    assert feed["processingStatus"] == "FATAL"
    report = json.loads(result(api, feed["resultFeedDocumentId"]))
    conform_schema("feeds/listings-feed-processing-report-schema-v2.json", report)
    assert report["summary"]["messagesProcessed"] == 0 and report["issues"]


FLAT = (
    "sku\tprice\tminimum-seller-allowed-price\tmaximum-seller-allowed-price\tquantity\thandling-time\t"
    "fulfillment-channel\n"
)


def test_legacy_flat_files_fatal_by_default(api):
    good = fbm_listing(api)
    content = (FLAT + f"{good['sku']}\t{good['minPrice']}\t\t\t5\t2\tDEFAULT\n").encode()
    feed = wait_feed(
        api,
        submit(
            api, "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", content, "text/tab-separated-values; charset=UTF-8"
        ),
    )
    assert feed["processingStatus"] == "FATAL" and "resultFeedDocumentId" not in feed
    assert api.listing(good["sku"])["quantity"] == good["quantity"]


def test_legacy_flat_files_processed_in_legacy_mode(emulator_factory):
    api = Api(emulator_factory(legacy_flat_files=True, synthetic=1000))
    good = fbm_listing(api)
    gated = api.find(productType="WATCH")
    content = (
        FLAT + f"{good['sku']}\t{good['minPrice']}\t\t\t5\t2\tDEFAULT\n"
        f"{gated['sku']}\t10.00\t\t\t1\t\t\nNOPE\t1.00\t\t\t1\t\t\n"
    ).encode()
    feed = wait_feed(
        api,
        submit(
            api, "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", content, "text/tab-separated-values; charset=UTF-8"
        ),
    )
    assert feed["processingStatus"] == "DONE"
    report = result(api, feed["resultFeedDocumentId"]).decode("cp1252")
    assert "Number of records processed\t\t3" in report and "Number of records successful\t\t1" in report
    rows = [line.split("\t") for line in report.splitlines()[5:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [("2", "6039", "Error"), ("3", "13013", "Error")]
    assert api.listing(good["sku"])["quantity"] == 5


def test_upload_rules_cancel_and_getfeeds_token(api):
    created = api("POST", "/feeds/2021-06-30/documents", json={"contentType": "application/json"}).json()
    wrong = httpx.put(created["url"], content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 403 and b"SignatureDoesNotMatch" in wrong.content
    api.control("POST", "/clock/advance", json={"seconds": 301})
    expired = httpx.put(created["url"], content=b"{}", headers={"Content-Type": "application/json"})
    assert expired.status_code == 403 and b"expired" in expired.content
    api.control("POST", "/faults", json={"kind": "feed_stuck", "operation": "createFeed"})
    stuck = submit(api, "JSON_LISTINGS_FEED", b"{}")
    api.control("POST", "/clock/advance", json={"seconds": 60})
    assert api("GET", f"/feeds/2021-06-30/feeds/{stuck}").json()["processingStatus"] == "IN_QUEUE"
    cancelled = api("DELETE", f"/feeds/2021-06-30/feeds/{stuck}")
    assert cancelled.status_code == 200
    assert api("GET", f"/feeds/2021-06-30/feeds/{stuck}").json()["processingStatus"] == "CANCELLED"
    again = api("DELETE", f"/feeds/2021-06-30/feeds/{stuck}")
    assert again.status_code == 400
    conform("feeds_2021-06-30", "cancelFeed", 400, again.json())
    for _ in range(3):
        submit(api, "JSON_LISTINGS_FEED", b"{}")
    page = api("GET", "/feeds/2021-06-30/feeds", params={"feedTypes": "JSON_LISTINGS_FEED", "pageSize": 2}).json()
    assert len(page["feeds"]) == 2 and page["nextToken"]
    mixed = api("GET", "/feeds/2021-06-30/feeds", params={"nextToken": page["nextToken"], "pageSize": 2})
    assert mixed.status_code == 400
    rest = api("GET", "/feeds/2021-06-30/feeds", params={"nextToken": page["nextToken"]}).json()
    assert len(rest["feeds"]) == 2 and "nextToken" not in rest
    missing = api("GET", "/feeds/2021-06-30/feeds/999")
    assert missing.status_code == 404
    conform("feeds_2021-06-30", "getFeed", 404, missing.json())


def test_fatal_and_silently_dropped_feeds(api):
    good = fbm_listing(api)
    doc = json.dumps(
        {
            "header": {"sellerId": SELLER, "version": "2.0"},
            "messages": [
                {
                    "messageId": 1,
                    "sku": good["sku"],
                    "operationType": "PATCH",
                    "productType": "PRODUCT",
                    "patches": [quantity_patch(77)],
                }
            ],
        }
    ).encode()
    api.control("POST", "/faults", json={"kind": "feed_fatal", "operation": "createFeed"})
    assert wait_feed(api, submit(api, "JSON_LISTINGS_FEED", doc))["processingStatus"] == "FATAL"
    api.control("POST", "/faults", json={"kind": "silent_drop", "operation": "createFeed"})
    feed = wait_feed(api, submit(api, "JSON_LISTINGS_FEED", doc))
    report = json.loads(result(api, feed["resultFeedDocumentId"]))
    assert feed["processingStatus"] == "DONE" and report["summary"]["messagesAccepted"] == 1
    assert api.listing(good["sku"])["quantity"] == good["quantity"]  # accepted, not applied
    api.control("POST", "/faults", json={"kind": "silent_drop", "operation": "patchListingsItem"})
    assert _patch(api, good["sku"], quantity_patch(55)).json()["status"] == "ACCEPTED"
    assert api.listing(good["sku"])["quantity"] == good["quantity"]
    assert _patch(api, good["sku"], quantity_patch(55)).json()["status"] == "ACCEPTED"
    assert api.listing(good["sku"])["quantity"] == 55


def test_lost_answer_applies_the_write_then_loses_its_answer(api):
    listing = fbm_listing(api)
    sku = listing["sku"]
    api.control("POST", "/faults", json={"kind": "lost_answer", "operation": "patchListingsItem", "status": 503})
    params = {"marketplaceIds": US}
    lost = api(
        "PATCH", f"{ITEMS}/{sku}", params=params, json={"productType": "PRODUCT", "patches": [quantity_patch(41)]}
    )
    assert lost.status_code == 503
    conform("listingsItems_2021-08-01", "patchListingsItem", 503, lost.json())
    assert api.listing(sku)["quantity"] == 41  # applied although the caller heard 503
    api.control("POST", "/faults", json={"kind": "lost_answer", "operation": "createFeed"})
    before = api("GET", "/feeds/2021-06-30/feeds", params={"feedTypes": "JSON_LISTINGS_FEED"}).json()["feeds"]
    document = upload(api, json.dumps({"header": {"sellerId": SELLER, "version": "2.0"}, "messages": []}).encode())
    with pytest.raises(httpx.TransportError):  # the connection is dropped after the feed was created
        httpx.post(
            api.server.url + "/feeds/2021-06-30/feeds",
            headers={"x-amz-access-token": api.token},
            json={"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [US], "inputFeedDocumentId": document},
        )
    after = api("GET", "/feeds/2021-06-30/feeds", params={"feedTypes": "JSON_LISTINGS_FEED"}).json()["feeds"]
    assert len(after) == len(before) + 1
    hits = {(h["kind"], h["operation"]): h["count"] for h in api.control("GET", "/faults")["hits"]}
    assert hits[("lost_answer", "patchListingsItem")] == 1 and hits[("lost_answer", "createFeed")] == 1


def test_document_transfers_take_latency_drop_and_status_faults_only_when_named(api):
    created = api("POST", "/feeds/2021-06-30/documents", json={"contentType": "application/json"}).json()
    document = api.server.state.store.documents[created["feedDocumentId"]]
    put = {"content": b'{"a": 1}', "headers": {"Content-Type": "application/json"}}
    api.control("POST", "/faults", json={"kind": "drop", "operation": "uploadDocument"})
    with pytest.raises(httpx.TransportError):  # cut off: nothing stored
        httpx.put(created["url"], **put)
    assert document.content is None
    api.control("POST", "/faults", json={"kind": "status", "status": 503, "operation": "uploadDocument"})
    slow_down = httpx.put(created["url"], **put)
    assert slow_down.status_code == 503 and b"<Code>SlowDown</Code>" in slow_down.content
    api.control("POST", "/faults", json={"kind": "latency", "latency_ms": 300, "operation": "uploadDocument"})
    with pytest.raises(httpx.ReadTimeout):  # the caller gives up; the late upload still lands
        httpx.put(created["url"], timeout=0.1, **put)
    for _ in range(50):
        if document.content is not None:
            break
        time.sleep(0.05)
    assert document.content == b'{"a": 1}'
    empty = json.dumps({"header": {"sellerId": SELLER, "version": "2.0"}, "messages": []}).encode()
    report = wait_feed(api, submit(api, "JSON_LISTINGS_FEED", empty))["resultFeedDocumentId"]
    url = api("GET", f"/feeds/2021-06-30/documents/{report}").json()["url"]
    api.control("POST", "/faults", json={"kind": "status", "status": 500, "operation": "*", "count": 1})
    assert httpx.put(created["url"], **put).status_code == 200  # a PUT of the same bytes again: idempotent
    api.control("POST", "/faults", json={"kind": "status", "status": 500, "operation": "downloadDocument"})
    assert httpx.get(url).status_code == 500
    api.control("POST", "/faults", json={"kind": "drop", "operation": "downloadDocument"})
    with pytest.raises(httpx.TransportError):
        httpx.get(url)
    assert httpx.get(url).status_code == 200
    faults = api.control("GET", "/faults")
    # the "*" fault is for SP-API operations: still pending after the document transfers
    assert [(f["kind"], f["operation"]) for f in faults["faults"]] == [("status", "*")]
    hits = {(h["kind"], h["operation"]): h["count"] for h in faults["hits"]}
    assert hits == {
        ("drop", "uploadDocument"): 1,
        ("status", "uploadDocument"): 1,
        ("latency", "uploadDocument"): 1,
        ("status", "downloadDocument"): 1,
        ("drop", "downloadDocument"): 1,
    }
    bad = httpx.post(api.server.url + "/_emulator/faults", json={"kind": "lost_answer", "operation": "uploadDocument"})
    assert bad.status_code == 400


def test_expire_tokens_fault_expires_every_issued_token_as_the_named_operation_arrives(api):
    path = f"{ITEMS}/SKU-0000001"
    params = {"marketplaceIds": US}
    api.control("POST", "/faults", json={"kind": "expire_tokens", "operation": "getListingsItem"})
    assert api("GET", "/feeds/2021-06-30/feeds", params={"feedTypes": "JSON_LISTINGS_FEED"}).status_code == 200
    denied = api("GET", path, params=params)
    assert denied.status_code == 403 and denied.json()["errors"][0]["code"] == "Unauthorized"
    assert Api(api.server)("GET", path, params=params).status_code in (200, 404)  # a fresh token works
    hits = {(h["kind"], h["operation"]): h["count"] for h in api.control("GET", "/faults")["hits"]}
    assert hits == {("expire_tokens", "getListingsItem"): 1}
