"""The invariants themselves: each one raises when its rule is broken (a check that cannot fail is a defect)."""

from __future__ import annotations

import json

import duckdb
import httpx
import pytest

from emulator.testing import lwa_token
from reliability import invariants as inv
from reliability.wiretap import Wiretap
from tests.sync.helpers import MARKETPLACE, seller_dir, spapi_for, start_emulator

SELLER = "A3DEMOSELLER01"


@pytest.fixture
def tapped(tmp_path, emulator_factory):
    data = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, data)
    return data, server, Wiretap(server)


def test_a_price_below_the_floor_and_an_fba_quantity_are_caught(tapped, tmp_path):
    data, server, tap = tapped
    (data / "warehouse").mkdir()
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
    token = lwa_token(server)
    offer = {
        "marketplace_id": MARKETPLACE["us"],
        "currency": "USD",
        "our_price": [{"schedule": [{"value_with_tax": 9}]}],
    }
    for sku, patches in [
        ("FBM-1", [{"op": "replace", "path": "/attributes/purchasable_offer", "value": [offer]}]),
        ("FBA-1", [{"op": "replace", "path": "/attributes/fulfillment_availability", "value": [{"quantity": 3}]}]),
    ]:
        httpx.patch(
            f"{server.url}/listings/2021-08-01/items/{SELLER}/{sku}",
            params={"marketplaceIds": MARKETPLACE["us"]},
            json={"productType": "PRODUCT", "patches": patches},
            headers={"x-amz-access-token": token},
        )
    with pytest.raises(AssertionError, match=r"FBM-1: price 9 outside \[10.00, 25.00\].*FBA-1: quantity 3 sent"):
        inv.within_bounds(data, "us", tap, MARKETPLACE["us"])


def test_the_same_feed_content_twice_is_caught(tapped, tmp_path):
    _, server, tap = tapped
    import dagster as dg

    with dg.build_resources({"spapi": spapi_for(server, tmp_path)}) as resources:
        client = resources.spapi.client_for(SELLER, region="na")
        message = {
            "messageId": 1,
            "sku": "FBM-1",
            "operationType": "PATCH",
            "productType": "PRODUCT",
            "patches": [
                {
                    "op": "replace",
                    "path": "/attributes/purchasable_offer",
                    "value": [
                        {
                            "marketplace_id": MARKETPLACE["us"],
                            "currency": "USD",
                            "our_price": [{"schedule": [{"value_with_tax": 15}]}],
                        }
                    ],
                }
            ],
        }
        header = {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"}
        document = json.dumps({"header": header, "messages": [message]}).encode()
        for _ in range(2):
            client.submit_feed("JSON_LISTINGS_FEED", [MARKETPLACE["us"]], document, content_type="application/json")
        for feed_id in [f.feed_id for f in server.state.store.feeds.values()]:
            assert client.finish_feed(feed_id).processing_status == "DONE"
    with pytest.raises(AssertionError, match="invariant 3: the same feed content"):
        inv.no_double_submission(tap, server)


def test_a_leaked_secret_is_caught(tmp_path):
    leaky = tmp_path / "feed.txt"
    leaky.write_bytes(b"sku\tprice\nAtzr|emulator-refresh-token\n")
    with pytest.raises(AssertionError, match="invariant 6"):
        inv.no_secrets(["Atzr|emulator-refresh-token"], files=[leaky])
    with pytest.raises(AssertionError, match="invariant 6"):
        inv.no_secrets(["Atza|abcdefgh123"], texts=["Unauthorized: token Atza|abcdefgh123 refused"])
    assert inv.no_secrets(["Atza|abcdefgh123"], files=[leaky], texts=["clean"]) == 2
