"""The Buy Box rule, outcome by outcome, with exact decimal expectations."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from pricing.buybox import buybox_prices
from pricing.money import install_money_macros
from seller.config import Pricing

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
ME = "A3DEMOSELLER01"
D = Decimal
LISTING = pa.schema(
    [
        ("sku", pa.string()),
        ("asin", pa.string()),
        ("fulfillment", pa.string()),
        ("base_price", pa.decimal128(18, 2)),
        ("min_price", pa.decimal128(18, 2)),
        ("max_price", pa.decimal128(18, 2)),
        ("shipping", pa.decimal128(18, 2)),
        ("undercut_percent", pa.decimal128(9, 4)),
    ]
)
OFFER = pa.schema(
    [
        ("asin", pa.string()),
        ("seller_id", pa.string()),
        ("price", pa.decimal128(18, 2)),
        ("shipping", pa.decimal128(18, 2)),
        ("fulfillment", pa.string()),
        ("observed_at", pa.timestamp("us", tz="UTC")),
    ]
)


def listing(sku="S", base="20.00", lo="10.00", hi="30.00", ship=None, undercut=None, fulfillment="FBM"):
    return {
        "sku": sku,
        "asin": "B000000001",
        "fulfillment": fulfillment,
        "base_price": D(base),
        "min_price": D(lo),
        "max_price": D(hi),
        "shipping": D(ship) if ship is not None else None,
        "undercut_percent": D(undercut) if undercut is not None else None,
    }


def offer(price, ship="0", seller="A1COMPETITOR01", fulfillment="FBM", age_h=1.0):
    return {
        "asin": "B000000001",
        "seller_id": seller,
        "price": D(price),
        "shipping": D(ship),
        "fulfillment": fulfillment,
        "observed_at": NOW - timedelta(hours=age_h),
    }


def price(listings, offers, pricing=None, decimals=2):
    pricing = pricing or Pricing()
    con = duckdb.connect()
    install_money_macros(con)
    con.register("l", pa.Table.from_pylist(listings, schema=LISTING))
    con.register("o", pa.Table.from_pylist(offers, schema=OFFER))
    rel = buybox_prices(con, "l", "o", seller_id=ME, decimals=decimals, pricing=pricing, now=NOW)
    rel.create_view("priced")
    rows = con.sql("SELECT *, from_minor(price_minor, $d) AS price FROM priced ORDER BY sku", params={"d": decimals})
    return {r["sku"]: r for r in rows.to_arrow_table().to_pylist()}


def test_undercut_rounds_down_to_the_cent():
    # 18.99 x 0.995 = 18.89505 -> 18.89 (rounding up would lose the undercut)
    row = price([listing()], [offer("18.99")])["S"]
    assert (row["outcome"], row["price"], row["price_minor"]) == ("undercut", D("18.89"), 1889)
    assert row["competitor_seller_id"] == "A1COMPETITOR01"
    assert row["competitor_landed_minor"] == 1899


def test_landed_price_includes_both_shippings():
    # competitor landed 14.00 + 2.00 = 16.00 -> target 15.92; our shipping 1.50 -> price 14.42
    row = price([listing(ship="1.50")], [offer("14.00", ship="2.00")])["S"]
    assert (row["outcome"], row["price"]) == ("undercut", D("14.42"))


def test_fba_listing_ignores_shipping_column():
    row = price([listing(ship="3.00", fulfillment="FBA")], [offer("18.99")])["S"]
    assert row["price"] == D("18.89")


def test_at_floor_clamps_to_min_price():
    row = price([listing(lo="28.00", hi="40.00")], [offer("25.00")])["S"]
    assert (row["outcome"], row["price"]) == ("at_floor", D("28.00"))


def test_at_ceiling_clamps_to_max_price():
    row = price([listing(base="12.00", lo="10.00", hi="13.00", undercut="2")], [offer("20.00")])["S"]
    assert (row["outcome"], row["price"]) == ("at_ceiling", D("13.00"))


def test_no_competitor_keeps_base_price_clamped():
    rows = price([listing("A", base="19.99"), listing("B", base="45.00", hi="30.00")], [])
    assert (rows["A"]["outcome"], rows["A"]["price"]) == ("no_competitor", D("19.99"))
    assert (rows["B"]["outcome"], rows["B"]["price"]) == ("no_competitor", D("30.00"))


def test_unchanged_when_rule_lands_on_base_price():
    # 20.10 x 0.995 = 19.9995 -> 19.99 = base price
    row = price([listing(base="19.99")], [offer("20.10")])["S"]
    assert (row["outcome"], row["price"]) == ("unchanged", D("19.99"))


def test_own_offers_and_stale_offers_are_ignored():
    offers = [offer("10.00", seller=ME), offer("11.00", age_h=25), offer("18.99", age_h=23.9)]
    row = price([listing()], offers)["S"]
    assert (row["price"], row["competitor_landed_minor"]) == (D("18.89"), 1899)


def test_freshness_window_is_configurable():
    row = price([listing()], [offer("18.99", age_h=3)], Pricing(freshness_hours=2))["S"]
    assert row["outcome"] == "no_competitor"


def test_fba_only_competes_with_fba_offers():
    offers = [offer("15.00", fulfillment="FBM"), offer("18.99", seller="A1COMPETITOR02", fulfillment="FBA")]
    assert price([listing()], offers)["S"]["price"] == D("14.92")
    row = price([listing()], offers, Pricing(compete_with="fba_only"))["S"]
    assert (row["price"], row["competitor_seller_id"]) == (D("18.89"), "A1COMPETITOR02")


def test_per_sku_undercut_overrides_channel_default():
    rows = price([listing("A"), listing("B", undercut="10")], [offer("20.00")], Pricing(undercut_percent=D("1")))
    assert rows["A"]["price"] == D("19.80")
    assert rows["B"]["price"] == D("18.00")
    assert rows["B"]["undercut_percent"] == D("10")


def test_ties_prefer_fba_then_seller_id():
    offers = [offer("18.99", seller="A9ZZZ"), offer("18.99", seller="A5FBA", fulfillment="FBA")]
    assert price([listing()], offers)["S"]["competitor_seller_id"] == "A5FBA"


@pytest.mark.parametrize(
    ("competitor", "expected", "outcome"),
    [("2980", D("2965"), "undercut"), ("1000", D("1500"), "at_floor"), ("9999", D("4000"), "at_ceiling")],
)
def test_jpy_prices_are_whole_yen(competitor, expected, outcome):
    # 2980 x 0.995 = 2965.1 -> 2965 yen
    row = price([listing(base="2500", lo="1500", hi="4000")], [offer(competitor)], decimals=0)["S"]
    assert (row["outcome"], row["price"], row["price_minor"]) == (outcome, expected, int(expected))


def test_jpy_base_price_with_fraction_is_floored():
    row = price([listing(base="2500.75", lo="1500", hi="4000")], [], decimals=0)["S"]
    assert (row["outcome"], row["price_minor"]) == ("no_competitor", 2500)
