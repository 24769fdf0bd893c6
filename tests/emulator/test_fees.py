"""The emulator's fee model (emulator/README.md, "Fees") through getMyFeesEstimates over HTTP, figures worked by hand:
two product types with a referral minimum (PRODUCT 15 % min 0.30, WATCH 16 % min 2.00), a media type with its
closing fee (BOOK), two size tiers (SHA-256 of the ASIN: B000000001 → bucket 1, small standard 3.22; B000000002 →
bucket 86, large standard 5.40), JPY in whole yen (×100), and the operation's own rate limit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from emulator.jsonutil import dumps
from emulator.testing import JP, US, Api, conform

MASTER = """sku,quantity,price,product_type
KETTLE,5,20.00,PRODUCT
CHEAP,5,1.50,PRODUCT
NOVEL,5,12.99,BOOK
WATCH-1,5,10.00,WATCH
"""
MAPPINGS = """channel,sku,asin,fulfillment,min_price,max_price
us,KETTLE,B000000001,FBA,1.00,99.00
us,CHEAP,B000000008,FBM,1.00,99.00
us,NOVEL,B000000002,FBA,1.00,99.00
us,WATCH-1,B000000003,FBM,1.00,99.00
jp,KETTLE,B000000001,FBA,100,9900
jp,CHEAP,B000000008,FBM,100,9900
"""


@pytest.fixture
def fees_api(tmp_path: Path, emulator_factory) -> Api:
    (tmp_path / "master_inventory.csv").write_text(MASTER)
    (tmp_path / "channel_mappings.csv").write_text(MAPPINGS)
    server = emulator_factory(synthetic=None, seed_from=str(tmp_path), rate_scale=0)
    return Api(server)


def item(sku: str, price: str, fba: bool, mp: str = US, currency: str = "USD") -> dict[str, Any]:
    return {
        "IdType": "SellerSKU",
        "IdValue": sku,
        "FeesEstimateRequest": {
            "MarketplaceId": mp,
            "IsAmazonFulfilled": fba,
            "PriceToEstimateFees": {"ListingPrice": {"CurrencyCode": currency, "Amount": Decimal(price)}},
            "Identifier": f"{mp}-{sku}",
        },
    }


def fees_of(result: dict[str, Any]) -> dict[str, Decimal]:
    assert result["Status"] == "Success", result
    details = {d["FeeType"]: Decimal(str(d["FinalFee"]["Amount"])) for d in result["FeesEstimate"]["FeeDetailList"]}
    details["total"] = Decimal(str(result["FeesEstimate"]["TotalFeesEstimate"]["Amount"]))
    return details


def post(api: Api, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = api("POST", "/products/fees/v0/feesEstimate", content=dumps(items))
    assert response.status_code == 200, response.text
    body = response.json()
    conform("productFeesV0", "getMyFeesEstimates", 200, body)
    return body


def test_fee_figures_per_product_type_and_size_tier(fees_api: Api) -> None:
    results = post(
        fees_api,
        [
            item("KETTLE", "20.00", True),  # PRODUCT, FBA, small standard
            item("CHEAP", "1.50", False),  # PRODUCT, FBM, below the minimum
            item("NOVEL", "12.99", True),  # BOOK, FBA, large standard, closing fee
            item("WATCH-1", "10.00", False),  # WATCH, FBM, below its own minimum
        ],
    )
    assert [r["FeesEstimateIdentifier"]["SellerInputIdentifier"] for r in results] == [
        "ATVPDKIKX0DER-KETTLE",
        "ATVPDKIKX0DER-CHEAP",
        "ATVPDKIKX0DER-NOVEL",
        "ATVPDKIKX0DER-WATCH-1",
    ]
    kettle, cheap, novel, watch = (fees_of(r) for r in results)
    # 15 % of 20.00 = 3.00; FBA small standard 3.22; no closing fee (not media)
    assert kettle == {
        "ReferralFee": Decimal("3.00"),
        "VariableClosingFee": Decimal("0"),
        "PerItemFee": Decimal("0"),
        "FBAFees": Decimal("3.22"),
        "total": Decimal("6.22"),
    }
    # 15 % of 1.50 = 0.225 → 0.23, below the minimum 0.30; FBM: no FBA fee
    assert cheap == {"ReferralFee": Decimal("0.30"), "VariableClosingFee": 0, "PerItemFee": 0, "total": Decimal("0.30")}
    # BOOK: 15 % of 12.99 = 1.9485 → 1.95 (half up), no minimum; closing fee 1.80; FBA large standard 5.40
    assert (novel["ReferralFee"], novel["VariableClosingFee"], novel["FBAFees"]) == (
        Decimal("1.95"),
        Decimal("1.80"),
        Decimal("5.40"),
    )
    assert novel["total"] == Decimal("9.15")
    # WATCH: 16 % of 10.00 = 1.60, below its minimum 2.00
    assert watch["ReferralFee"] == Decimal("2.00") and watch["total"] == Decimal("2.00")


def test_jpy_is_whole_yen_with_the_figures_times_100(fees_api: Api) -> None:
    kettle, cheap = post(fees_api, [item("KETTLE", "2000", True, JP, "JPY"), item("CHEAP", "150", False, JP, "JPY")])
    # 15 % of 2000 = 300; FBA small standard 3.22 × 100 = 322 yen
    assert fees_of(kettle)["ReferralFee"] == 300 and fees_of(kettle)["FBAFees"] == 322
    assert fees_of(kettle)["total"] == 622
    # 15 % of 150 = 22.5 → 23, below the minimum 0.30 × 100 = 30 yen
    assert fees_of(cheap)["ReferralFee"] == 30 and fees_of(cheap)["total"] == 30
    assert kettle["FeesEstimate"]["TotalFeesEstimate"]["CurrencyCode"] == "JPY"


def test_a_bad_item_fails_alone_and_a_bad_marketplace_fails_the_request(fees_api: Api) -> None:
    results = post(
        fees_api,
        [item("KETTLE", "20.00", True), item("NOPE", "5.00", False), item("CHEAP", "5.00", False, US, "EUR")],
    )
    assert [r["Status"] for r in results] == ["Success", "ClientError", "ClientError"]
    assert results[1]["Error"]["Code"] == "InvalidParameterValue" and "NOPE" in results[1]["Error"]["Message"]
    assert "CurrencyCode must be USD" in results[2]["Error"]["Message"]
    bad = fees_api("POST", "/products/fees/v0/feesEstimate", content=dumps([item("KETTLE", "1", True, "XX")]))
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "InvalidInput"
    too_many = fees_api("POST", "/products/fees/v0/feesEstimate", content=dumps([item("KETTLE", "1", True)] * 21))
    assert too_many.status_code == 400


def test_the_rate_limit_is_enforced(tmp_path: Path, emulator_factory) -> None:
    (tmp_path / "master_inventory.csv").write_text(MASTER)
    (tmp_path / "channel_mappings.csv").write_text(MAPPINGS)
    api = Api(emulator_factory(synthetic=None, seed_from=str(tmp_path), rate_scale=1.0))  # 0.5/s, burst 1
    body = dumps([item("KETTLE", "20.00", True)])
    first = api("POST", "/products/fees/v0/feesEstimate", content=body)
    second = api("POST", "/products/fees/v0/feesEstimate", content=body)
    assert first.status_code == 200 and first.headers["x-amzn-RateLimit-Limit"] == "0.5"
    assert second.status_code == 429 and second.json()["errors"][0]["code"] == "QuotaExceeded"
